// fuzz_chat_stream: the input is a streamed chat-completion body (server-sent
// events). It is assembled twice — whole, and in pieces whose size the first
// byte picks — and both must agree: the parser may not depend on where the
// network cut the bytes. Nothing may crash, and a reply's content must
// extend what the stream reported as its progress.

#include "core/providers/chat_stream.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <variant>

namespace {

using exai::core::ChatReply;
using exai::core::openai::ChatStream;
using exai::core::openai::StreamProblem;

constexpr std::size_t kLimit = 1U << 16U;

std::variant<ChatReply, StreamProblem>
assemble(std::string_view body, std::size_t piece, std::string& progress)
{
  ChatStream stream("fuzz-model", kLimit);
  for (std::size_t at = 0; at < body.size(); at += piece) {
    if (!stream.feed(body.substr(at, piece))) {
      break;
    }
  }
  progress = stream.content();
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
  const auto whole = assemble(body, body.size() + 1, whole_progress);
  const auto pieces = assemble(body, piece, piece_progress);
  if (whole.index() != pieces.index()) {
    std::abort();
  }
  if (const auto* a = std::get_if<ChatReply>(&whole)) {
    const auto& b = std::get<ChatReply>(pieces);
    if (a->content != b.content || a->finish_reason != b.finish_reason || a->usage != b.usage ||
        a->tool_calls.size() != b.tool_calls.size() || a->content.rfind(whole_progress, 0) != 0) {
      std::abort();
    }
  } else if (std::get<StreamProblem>(whole).kind != std::get<StreamProblem>(pieces).kind) {
    std::abort();
  }
  return 0;
}
