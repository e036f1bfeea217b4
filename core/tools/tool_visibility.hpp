#pragma once

// Which registered tools clients see and may call, from the original daemon's
// variables (same semantics as its ToolRegistry.build_tools):
//  1. LEAN_MODE=true keeps only LEAN_TOOLS, or the default lean set when
//     LEAN_TOOLS is empty; otherwise every tool is active;
//  2. unless STRICT_LEAN=true, version and listmodels are always added back;
//  3. DISABLED_TOOLS removes names (any tool, essential or not);
//  4. self-check is listed only with DIAGNOSTICS=true.
// Unlike the original, no tool comes back behind these rules (its late
// registration re-added five provider tools).

#include "core/config/config.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace exai::core {

class ToolRegistry;

// The original's default core set (its TOOL_VISIBILITY "core" tier).
const std::vector<std::string>& default_lean_tools();

class ToolVisibility {
public:
  ToolVisibility(const DaemonConfig& config, const ToolRegistry& tools);

  // Why `name` (a registered tool) is hidden, naming the variable; nullopt
  // when it is visible.
  std::optional<std::string> hidden_reason(std::string_view name) const;
  bool visible(std::string_view name) const { return !hidden_reason(name); }

  // Names in DISABLED_TOOLS or LEAN_TOOLS that no tool has: warned about at
  // start-up (a shared env file may name tools exai does not have), never fatal.
  const std::vector<std::string>& unknown_names() const noexcept { return unknown_; }

private:
  const DaemonConfig& config_;
  std::vector<std::string> lean_; // the active lean set (LEAN_MODE only)
  std::vector<std::string> unknown_;
};

} // namespace exai::core
