// fuzz_chat_stream: the input is a streamed chat-completion body (server-sent
// events). It is assembled three times — whole, in pieces whose size the
// first byte picks, and whole with every event read into a JSON tree (no
// simple-chunk reader) — and all must agree: the parser may not depend on
// where the network cut the bytes, and the fast reading of simple chunks may
// not differ from the general one. Nothing may crash, and a reply's content
// must extend what the stream reported as its progress.

#include "core/providers/chat_stream.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>

namespace {

using exai::core::ChatReply;
using exai::core::openai::ChatStream;
using exai::core::openai::StreamProblem;

constexpr std::size_t kLimit = 1U << 16U;

std::variant<ChatReply, StreamProblem>
assemble(std::string_view body,
         std::size_t piece,
         std::string& progress,
         bool general_only = false,
         std::string* counters = nullptr)
{
  ChatStream stream("fuzz-model", kLimit, general_only);
  for (std::size_t at = 0; at < body.size(); at += piece) {
    if (!stream.feed(body.substr(at, piece))) {
      break;
    }
  }
  progress = stream.content();
  if (counters != nullptr) {
    *counters = std::to_string(stream.received()) + (stream.started() ? "+" : "-");
  }
  return stream.finish();
}

} // namespace

extern "C" int
LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
  if (size == 0) {
    return 0;
  }
  const std::size_t piece = 1 + data[0] % 17U;
  const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::string whole_progress;
  std::string piece_progress;
  std::string whole_counters;
  std::string general_counters;
  const auto whole = assemble(body, body.size() + 1, whole_progress, false, &whole_counters);
  const auto pieces = assemble(body, piece, piece_progress);
  std::string general_progress;
  const auto general = assemble(body, body.size() + 1, general_progress, true, &general_counters);
  for (const auto* other : {&pieces, &general}) {
    if (whole.index() != other->index()) {
      std::abort();
    }
    if (const auto* a = std::get_if<ChatReply>(&whole)) {
      const auto& b = std::get<ChatReply>(*other);
      if (a->content != b.content || a->finish_reason != b.finish_reason || a->usage != b.usage ||
          a->model != b.model || a->web_search != b.web_search ||
          a->tool_calls.size() != b.tool_calls.size()) {
        std::abort();
      }
    } else if (std::get<StreamProblem>(whole).kind != std::get<StreamProblem>(*other).kind) {
      std::abort();
    }
  }
  if (whole.index() == 0 && std::get<ChatReply>(whole).content.rfind(whole_progress, 0) != 0) {
    std::abort();
  }
  if (whole_progress != general_progress || whole_counters != general_counters) {
    std::abort();
  }
  return 0;
}
