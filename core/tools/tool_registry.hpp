#pragma once

#include "core/tools/tool.hpp"
#include "core/tools/tool_name.hpp"

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace exai::core {

// Tools by name. Filled once at start-up, then read-only: any number of
// threads may look tools up without locking.
class ToolRegistry {
public:
  // Adds `tool`. Throws Error(internal_error) for a duplicate name.
  void add(std::unique_ptr<Tool> tool);

  // The tool called exactly `name` (suffix already stripped), or null.
  const Tool* find(std::string_view name) const;

  // The list_tools array in name order: [{"name","title","description",
  // "inputSchema","outputSchema","annotations"}…], the schemas generated for
  // the models `providers` offers.
  nlohmann::json describe(const ProviderRegistry& providers) const;

  // Every tool, in name order.
  std::vector<const Tool*> all() const;

  std::size_t size() const noexcept { return tools_.size(); }

private:
  std::map<std::string, std::unique_ptr<Tool>, std::less<>> tools_;
};

// Registers every built-in tool: the one list to extend when adding a tool.
void register_builtin_tools(ToolRegistry& registry);

// The process-wide registry with the built-in tools, built exactly once
// however many threads ask first.
const ToolRegistry& process_tools();

} // namespace exai::core
