// provider_capabilities: what each provider is configured for and offers,
// the settings that shape provider calls, and the tools this daemon lists.

#include "core/config/config.hpp"
#include "core/tools/builtin.hpp"
#include "core/tools/daemon_view.hpp"
#include "core/tools/tool_registry.hpp"
#include "core/tools/tool_visibility.hpp"

namespace exai::core::tools {

namespace {

nlohmann::json
features_of(std::string_view provider)
{
  if (provider == kKimiProviderId) {
    return {"chat", "tool_calls", "$web_search", "files (file-extract)", "vision models"};
  }
  return {"chat",
          "tool_calls",
          "web_search (server side and POST /web_search)",
          "files (agent)",
          "thinking"};
}

ToolSpec
provider_capabilities_spec()
{
  ToolSpec s;
  s.name = "provider_capabilities";
  s.title = "Provider capabilities";
  s.description =
      "Show each provider's configuration (key presence only, base URL, models, circuit), "
      "what it supports (tool calls, web search, files, thinking), the limits that apply to "
      "provider calls and uploads, and the tools this daemon lists.";
  s.properties = {
      {"include_tools",
       {{"type", "boolean"},
        {"default", true},
        {"description", "List the names of the tools clients can call"}}},
      {"show_advanced",
       {{"type", "boolean"},
        {"default", false},
        {"description",
         "Also list the registered tools that are hidden, with the rule that hides each "
         "(DISABLED_TOOLS, LEAN_MODE, DIAGNOSTICS)"}}}};
  return s;
}

nlohmann::json
provider_capabilities_report(ToolContext& context)
{
  nlohmann::json providers = nlohmann::json::array();
  for (const auto& provider : context.providers.providers()) {
    providers.push_back({{"id", provider.id},
                         {"available", provider.available()},
                         {"key_present", provider.key_present()},
                         {"key_variable", provider.key_variable},
                         {"base_url", provider.base_url},
                         {"models", provider.models.size()},
                         {"circuit", context.chat.circuit_state(provider.id)},
                         {"disabled_reason", provider.disabled_reason},
                         {"features", features_of(provider.id)}});
  }
  const auto& config = context.config;
  nlohmann::json report = {{"providers", providers},
                           {"default_model", context.providers.default_model()},
                           {"limits",
                            {{"EXAI_UPLOAD_MAX_BYTES", config.upload_max_bytes},
                             {"EXAI_FILE_MAX_BYTES", config.file_max_bytes},
                             {"EXAI_IMAGE_MAX_BYTES", config.image_max_bytes},
                             {"EXAI_FILE_ROOTS", config.file_roots},
                             {"EXAI_WS_KIMI_MAX_INFLIGHT", config.kimi_max_inflight},
                             {"EXAI_WS_GLM_MAX_INFLIGHT", config.glm_max_inflight}}}};
  const bool include_tools = bool_arg(context.arguments, "include_tools").value_or(true);
  const bool show_advanced = bool_arg(context.arguments, "show_advanced").value_or(false);
  if (context.daemon != nullptr && (include_tools || show_advanced)) {
    nlohmann::json visible = nlohmann::json::array();
    nlohmann::json hidden = nlohmann::json::array();
    for (const Tool* tool : context.daemon->tools.all()) {
      if (const auto reason = context.daemon->visibility.hidden_reason(tool->name())) {
        hidden.push_back({{"name", tool->name()}, {"reason", *reason}});
      } else {
        visible.push_back(tool->name());
      }
    }
    if (include_tools) {
      report["tools"] = std::move(visible);
    }
    if (show_advanced) {
      report["hidden_tools"] = std::move(hidden);
    }
  }
  return report;
}

} // namespace

std::unique_ptr<Tool>
make_provider_capabilities()
{
  return make_report_tool(provider_capabilities_spec(), Reuse::no, provider_capabilities_report);
}

} // namespace exai::core::tools
