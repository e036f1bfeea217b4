#include "core/providers/sse_parser.hpp"

namespace exai::core::sse {

Parser::Parser(std::size_t max_event_bytes)
    : max_(max_event_bytes)
{
}

bool
Parser::feed(std::string_view bytes, const EventFn& on_event)
{
  while (!bytes.empty() && !too_large_) {
    if (after_cr_) {
      after_cr_ = false;
      if (bytes.front() == '\n') {
        bytes.remove_prefix(1);
        continue;
      }
    }
    const auto end = bytes.find_first_of("\r\n");
    const auto piece = bytes.substr(0, end);
    if (line_.size() + data_.size() + piece.size() > max_) {
      too_large_ = true;
      line_.clear();
      data_.clear();
      break;
    }
    line_.append(piece);
    if (end == std::string_view::npos) {
      break;
    }
    after_cr_ = bytes[end] == '\r';
    bytes.remove_prefix(end + 1);
    line_done(on_event);
  }
  return !too_large_;
}

bool
Parser::finish(const EventFn& on_event)
{
  if (too_large_) {
    return false;
  }
  if (!line_.empty()) {
    line_done(on_event);
  }
  dispatch(on_event);
  return true;
}

void
Parser::line_done(const EventFn& on_event)
{
  const std::string_view line = line_;
  if (line.empty()) {
    dispatch(on_event);
    return;
  }
  if (line.front() != ':') {
    const auto colon = line.find(':');
    const std::string_view field = line.substr(0, colon);
    std::string_view value =
        colon == std::string_view::npos ? std::string_view() : line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') {
      value.remove_prefix(1);
    }
    if (field == "data") {
      if (has_data_) {
        data_ += '\n';
      }
      data_.append(value);
      has_data_ = true;
    } else if (field == "event") {
      type_ = std::string(value);
    }
  }
  line_.clear();
}

void
Parser::dispatch(const EventFn& on_event)
{
  if (has_data_) {
    on_event(Event{type_, data_});
  }
  data_.clear();
  type_.clear();
  has_data_ = false;
}

} // namespace exai::core::sse
