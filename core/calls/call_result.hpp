#pragma once

#include "core/error.hpp"

#include <nlohmann/json.hpp>

#include <string>
#include <variant>
#include <vector>

namespace exai::core {

// A call's answer: the text items of `outputs` (usually one envelope).
struct ToolSuccess {
  std::vector<std::string> outputs;
};

// A call's failure, reported as its error (SPEC §2 error codes).
struct ToolFailure {
  Errc code = Errc::tool_execution_error;
  std::string message;
  nlohmann::json details = nlohmann::json::object();
};

// How a call ended. Transports render it (op protocol, MCP) in net/.
using ToolResult = std::variant<ToolSuccess, ToolFailure>;

// Bytes a result holds (for the byte budgets of the stores that keep it).
std::size_t result_bytes(const ToolResult& result) noexcept;

} // namespace exai::core
