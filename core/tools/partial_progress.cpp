#include "core/tools/partial_progress.hpp"

#include <utility>

namespace exai::core {

std::string
partial_note(std::string_view model, std::string_view content, std::size_t tail)
{
  std::string note(kStreamingNotePrefix);
  note.append(model);
  note.append(" (");
  note.append(std::to_string(content.size()));
  note.append(" chars): ");
  if (content.size() > tail) {
    std::string_view end = content.substr(content.size() - tail);
    // Never start inside a multi-byte character.
    while (!end.empty() && (static_cast<unsigned char>(end.front()) & 0xC0U) == 0x80U) {
      end.remove_prefix(1);
    }
    note += "\u2026";
    note.append(end);
  } else {
    note.append(content);
  }
  return note;
}

PartialProgress::PartialProgress(std::function<void(std::string_view note)> progress,
                                 std::string model,
                                 std::chrono::milliseconds interval,
                                 std::function<Clock::time_point()> now)
    : progress_(std::move(progress))
    , model_(std::move(model))
    , interval_(interval)
    , now_(std::move(now))
    , last_(now_())
{
}

void
PartialProgress::operator()(std::string_view content)
{
  if (!progress_ || content.empty()) {
    return;
  }
  const auto now = now_();
  if (now - last_ < interval_) {
    return;
  }
  last_ = now;
  progress_(partial_note(model_, content));
}

} // namespace exai::core
