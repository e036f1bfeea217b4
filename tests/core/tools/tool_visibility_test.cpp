#include "core/tools/tool_registry.hpp"
#include "core/tools/tool_visibility.hpp"

#include <catch2/catch.hpp>

using exai::core::DaemonConfig;
using exai::core::default_lean_tools;
using exai::core::process_tools;
using exai::core::ToolVisibility;

namespace {

std::vector<std::string>
visible(const DaemonConfig& config)
{
  const ToolVisibility visibility(config, process_tools());
  std::vector<std::string> names;
  for (const auto* tool : process_tools().all()) {
    if (visibility.visible(tool->name())) {
      names.emplace_back(tool->name());
    }
  }
  return names;
}

} // namespace

TEST_CASE("every tool but self-check is visible by default", "[core][visibility]")
{
  DaemonConfig config;
  const auto names = visible(config);
  CHECK(names.size() == process_tools().size() - 1);
  CHECK(std::find(names.begin(), names.end(), "self-check") == names.end());
  config.diagnostics = true;
  CHECK(visible(config).size() == process_tools().size());
}

TEST_CASE("the default lean set is the original's ten core tools", "[core][visibility]")
{
  CHECK(default_lean_tools().size() == 10);
  for (const auto& name : default_lean_tools()) {
    CAPTURE(name);
    CHECK(process_tools().find(name) != nullptr);
  }
}

TEST_CASE("lean mode, strict lean and disabled tools combine as in the original",
          "[core][visibility]")
{
  DaemonConfig config;
  config.lean_mode = true;
  CHECK(visible(config).size() == 12);
  config.strict_lean = true;
  CHECK(visible(config).size() == 10);
  config.disabled_tools = {"chat"};
  CHECK(visible(config).size() == 9);
  const ToolVisibility visibility(config, process_tools());
  CHECK(visibility.hidden_reason("chat") == "disabled by DISABLED_TOOLS");
  CHECK(visibility.hidden_reason("version") ==
        "not in the lean set (LEAN_MODE=true, STRICT_LEAN=true)");
}

TEST_CASE("unknown names in DISABLED_TOOLS and LEAN_TOOLS are collected, not fatal",
          "[core][visibility]")
{
  DaemonConfig config;
  config.disabled_tools = {"aug_chat", "chat"};
  config.lean_tools = {"kimi_multi_file_chat"};
  const ToolVisibility visibility(config, process_tools());
  CHECK(visibility.unknown_names() == std::vector<std::string>{"aug_chat", "kimi_multi_file_chat"});
}
