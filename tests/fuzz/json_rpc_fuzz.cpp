// fuzz_json_rpc: the input is one MCP message (a line on stdio, a POST body
// on /mcp). Parses, classifies and routes it as both transports do, and
// checks that whatever is answered (prompts included) is a JSON-RPC 2.0
// object.

#include "core/mcp/mcp_prompts.hpp"
#include "core/mcp/mcp_protocol.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

namespace mcp = exai::core::mcp;

extern "C" int
LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (const auto batch = mcp::parse_batch(text)) {
    if (batch->refused.has_value() == !batch->messages.empty() ||
        batch->messages.size() > mcp::kMaxBatch) {
      std::abort();
    }
  }
  const mcp::Message message = mcp::parse_message(text);
  const mcp::Action action = mcp::route(message, "fuzz");
  if (!action.response.empty()) {
    const auto reply = nlohmann::json::parse(action.response, nullptr, false);
    if (!reply.is_object() || reply.value("jsonrpc", "") != "2.0") {
      std::abort();
    }
  }
  if (action.type == mcp::Action::Type::get_prompt) {
    static const auto tools = nlohmann::json::parse(R"([{"name":"chat","description":"x"}])");
    const auto reply = nlohmann::json::parse(
        mcp::prompt_get_response(action.id, action.params, tools), nullptr, false);
    if (!reply.is_object() || reply.value("jsonrpc", "") != "2.0") {
      std::abort();
    }
  }
  if (action.type == mcp::Action::Type::call_tool && !action.call.arguments.is_object()) {
    std::abort();
  }
  return 0;
}
