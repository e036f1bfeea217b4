// fuzz_op_protocol: the input is one WebSocket message a client sends after
// hello. Parses it as the daemon does (nesting capped, then the op frame and a
// call_tool's fields), renders the answer the daemon would give for a bad
// frame, and checks the depth scanner agrees with what was built.

#include "core/util/json_text.hpp"
#include "net/protocol/op_protocol.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <variant>

namespace protocol = exai::net::protocol;

namespace {

// Depth of the document nlohmann built (iteratively: never deeper than the cap).
std::size_t
depth_of(const nlohmann::json& value, std::size_t depth = 0)
{
  if (!value.is_structured()) {
    return depth;
  }
  std::size_t deepest = depth + 1;
  for (const auto& item : value) {
    deepest = std::max(deepest, depth_of(item, depth + 1));
  }
  return deepest;
}

} // namespace

extern "C" int
LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = protocol::parse_frame(text);
  if (const auto* problem = std::get_if<protocol::FrameProblem>(&parsed)) {
    const auto answer = nlohmann::json::parse(protocol::problem_frame(*problem), nullptr, false);
    if (!answer.is_object() || !answer.contains("op")) {
      std::abort(); // every answer carries op (and request_id when known)
    }
    return 0;
  }
  const nlohmann::json& frame = std::get<nlohmann::json>(parsed);
  if (depth_of(frame) > exai::core::kMaxJsonDepth) {
    std::abort();
  }
  (void)frame.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  auto call = protocol::parse_call_tool(frame, "fuzz-session");
  if (const auto* problem = std::get_if<protocol::FrameProblem>(&call)) {
    (void)protocol::problem_frame(*problem);
  } else if (std::get<exai::core::CallRequest>(call).request_id.empty()) {
    std::abort();
  }
  (void)exai::core::top_level_string(text, "request_id");
  return 0;
}
