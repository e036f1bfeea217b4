#pragma once

// MCP prompts: one per daemon tool plus `continue`, which MCP clients show as
// slash commands (e.g. /exai:chat). A prompt does not call the tool itself; it
// is the user message that asks the client's model to call it, with the model
// and thinking mode the user picked as arguments.

#include "core/mcp/mcp_protocol.hpp"

#include <nlohmann/json.hpp>

#include <string>

namespace exai::core::mcp {

// The prompts/list result for the daemon's list_tools `tools` array.
nlohmann::json prompts_list_result(const nlohmann::json& daemon_tools);

// The JSON-RPC reply to prompts/get: the prompt's messages, or -32602 naming
// an unknown prompt or a bad argument.
std::string prompt_get_response(const nlohmann::json& id,
                                const nlohmann::json& params,
                                const nlohmann::json& daemon_tools);

// The JSON-RPC reply to completion/complete: for a prompt's `model` or
// `thinking_mode` argument, the values of that tool's schema enum starting
// with what was typed (at most 100); no values for anything else.
std::string completion_response(const nlohmann::json& id,
                                const nlohmann::json& params,
                                const nlohmann::json& daemon_tools);

} // namespace exai::core::mcp
