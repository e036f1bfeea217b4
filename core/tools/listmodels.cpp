// listmodels: the models each configured provider offers. No model call.

#include "core/tools/builtin.hpp"

namespace exai::core::tools {

namespace {

std::string
capability_text(const ModelCapabilities& caps)
{
  std::string text;
  const auto add = [&text](bool on, const char* what) {
    if (on) {
      text += text.empty() ? "" : ", ";
      text += what;
    }
  };
  add(caps.images, "images");
  add(caps.function_calling, "function calling");
  add(caps.thinking, "thinking");
  return text.empty() ? "text" : text;
}

class ListModels final : public Tool {
public:
  const ToolSpec& spec() const override
  {
    static const ToolSpec spec = [] {
      ToolSpec s;
      s.name = "listmodels";
      s.title = "List models";
      s.description =
          "List the models available from each configured provider, with context window, output "
          "limit, capabilities and aliases, and what model auto picks for each kind of tool.";
      return s;
    }();
    return spec;
  }
  ToolResult run(ToolContext& context) const override
  {
    std::string text = "# Available models\n";
    nlohmann::json listed = nlohmann::json::object();
    for (const auto& provider : context.providers.providers()) {
      text += "\n## " + provider.display_name;
      if (!provider.available()) {
        text += " (not configured" +
                (provider.disabled_reason.empty() ? "" : ": " + provider.disabled_reason) + ")\n";
        continue;
      }
      text += "\n";
      nlohmann::json names = nlohmann::json::array();
      for (const ModelInfo* model : provider.models) {
        text += "- `" + model->name + "` — " + std::to_string(model->context_window) +
                " tokens context, " + std::to_string(model->max_output_tokens) + " max output; " +
                capability_text(model->capabilities);
        if (!model->aliases.empty()) {
          text += "; aliases:";
          for (const auto& alias : model->aliases) {
            text += " `" + alias + "`";
          }
        }
        text += "\n";
        names.push_back(model->name);
      }
      listed[provider.id] = names;
    }
    const auto& routing = context.providers.routing();
    text += "\nDefault model: `" + context.providers.default_model() + "`\n";
    text += "\n`auto` picks per tool: fast tools `" + routing.glm_speed + "` (else `" +
            routing.kimi_speed + "`), deep analysis `" + routing.kimi_quality + "` (else `" +
            routing.glm_quality + "`), Kimi tools `" + routing.kimi_default +
            "`; only models of configured providers, and once to the other provider when the "
            "first is unavailable.\n";
    const nlohmann::json auto_routes = {{"fast", {routing.glm_speed, routing.kimi_speed}},
                                        {"deep", {routing.kimi_quality, routing.glm_quality}},
                                        {"kimi", {routing.kimi_default}}};
    return ToolSuccess{{envelope(name(),
                                 text,
                                 "markdown",
                                 {{"models", listed},
                                  {"default_model", context.providers.default_model()},
                                  {"auto", auto_routes}})}};
  }
};

} // namespace

std::unique_ptr<Tool>
make_listmodels()
{
  return std::make_unique<ListModels>();
}

} // namespace exai::core::tools
