#include "core/tools/tool_visibility.hpp"

#include "core/tools/tool_registry.hpp"

#include <algorithm>

namespace exai::core {

namespace {

bool
contains(const std::vector<std::string>& names, std::string_view name)
{
  return std::find(names.begin(), names.end(), name) != names.end();
}

} // namespace

const std::vector<std::string>&
default_lean_tools()
{
  static const std::vector<std::string> names = {"status",
                                                 "chat",
                                                 "planner",
                                                 "thinkdeep",
                                                 "analyze",
                                                 "codereview",
                                                 "refactor",
                                                 "testgen",
                                                 "debug",
                                                 "kimi_chat_with_files"};
  return names;
}

ToolVisibility::ToolVisibility(const DaemonConfig& config, const ToolRegistry& tools)
    : config_(config)
    , lean_(config.lean_tools.empty() ? default_lean_tools() : config.lean_tools)
{
  const auto check = [&](const std::string& name) {
    if (tools.find(name) == nullptr && !contains(unknown_, name)) {
      unknown_.push_back(name);
    }
  };
  for (const auto& name : config.disabled_tools) {
    check(name);
  }
  for (const auto& name : config.lean_tools) {
    check(name);
  }
}

std::optional<std::string>
ToolVisibility::hidden_reason(std::string_view name) const
{
  const std::string tool(name);
  if (config_.disabled_tools.count(tool) != 0) {
    return "disabled by DISABLED_TOOLS";
  }
  if (config_.lean_mode && !contains(lean_, tool) &&
      (config_.strict_lean || (tool != "version" && tool != "listmodels"))) {
    return std::string("not in the lean set (LEAN_MODE=true") +
           (config_.lean_tools.empty() ? "" : ", LEAN_TOOLS") +
           (config_.strict_lean ? ", STRICT_LEAN=true)" : ")");
  }
  if (tool == "self-check" && !config_.diagnostics) {
    return "self-check is listed only with DIAGNOSTICS=true";
  }
  return std::nullopt;
}

} // namespace exai::core
