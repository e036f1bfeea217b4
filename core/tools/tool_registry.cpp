#include "core/tools/tool_registry.hpp"

#include "core/tools/builtin.hpp"
#include "core/tools/workflow/workflow.hpp"
#include "core/util/once.hpp"

#include <array>

namespace exai::core {

void
ToolRegistry::add(std::unique_ptr<Tool> tool)
{
  std::string name(tool->name());
  if (!tools_.emplace(name, std::move(tool)).second) {
    throw Error(Errc::internal_error, "tool registered twice: " + name);
  }
}

const Tool*
ToolRegistry::find(std::string_view name) const
{
  const auto it = tools_.find(name);
  return it == tools_.end() ? nullptr : it->second.get();
}

nlohmann::json
ToolRegistry::describe(const ProviderRegistry& providers) const
{
  nlohmann::json list = nlohmann::json::array();
  for (const auto& [name, tool] : tools_) {
    const ToolSpec& spec = tool->spec();
    list.push_back({{"name", name},
                    {"title", spec.title},
                    {"description", spec.description},
                    {"inputSchema", input_schema(spec, providers)},
                    {"outputSchema", envelope_output_schema()},
                    {"annotations",
                     {{"title", spec.title},
                      {"readOnlyHint", spec.read_only},
                      {"openWorldHint", spec.model_class != ModelClass::none}}}});
  }
  return list;
}

std::vector<const Tool*>
ToolRegistry::all() const
{
  std::vector<const Tool*> out;
  out.reserve(tools_.size());
  for (const auto& [name, tool] : tools_) {
    out.push_back(tool.get());
  }
  return out;
}

void
register_builtin_tools(ToolRegistry& registry)
{
  registry.add(tools::make_challenge());
  registry.add(tools::make_chat());
  registry.add(tools::make_consensus());
  registry.add(tools::make_listmodels());
  registry.add(tools::make_planner());
  registry.add(tools::make_status());
  registry.add(tools::make_version());
  registry.add(tools::make_activity());
  registry.add(tools::make_health());
  registry.add(tools::make_provider_capabilities());
  registry.add(tools::make_self_check());
  registry.add(tools::make_toolcall_log_tail());
  registry.add(tools::make_glm_payload_preview());
  registry.add(tools::make_glm_upload_file());
  registry.add(tools::make_glm_web_search());
  registry.add(tools::make_kimi_capture_headers());
  registry.add(tools::make_kimi_chat_with_files());
  registry.add(tools::make_kimi_chat_with_tools());
  registry.add(tools::make_kimi_intent_analysis());
  registry.add(tools::make_kimi_manage_files());
  registry.add(tools::make_kimi_upload_files());
  // The table-driven workflow tools (core/tools/workflow/workflow_table.cpp).
  for (const auto& def : workflow::table()) {
    registry.add(workflow::make_workflow_tool(def));
  }
}

const ToolRegistry&
process_tools()
{
  static OnceValue<ToolRegistry> registry;
  return registry.get([] {
    ToolRegistry built;
    register_builtin_tools(built);
    return built;
  });
}

} // namespace exai::core
