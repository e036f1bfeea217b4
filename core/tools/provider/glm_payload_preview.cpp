// glm_payload_preview: the exact chat-completions body exai would send to
// GLM for these arguments — tools, tool_choice, thinking and web search
// included. Sends nothing.

#include "core/providers/openai_format.hpp"
#include "core/providers/provider_features.hpp"
#include "core/tools/builtin.hpp"

#include <algorithm>

namespace exai::core::tools {

namespace {

nlohmann::json
glm_model_names()
{
  nlohmann::json names = nlohmann::json::array();
  for (const auto& model : ModelCatalog::builtin().models()) {
    if (model.provider_id == kGlmProviderId) {
      names.push_back(model.name);
      for (const auto& alias : model.aliases) {
        names.push_back(alias);
      }
    }
  }
  return names;
}

class GlmPayloadPreview final : public Tool {
public:
  const ToolSpec& spec() const override
  {
    static const ToolSpec spec = [] {
      ToolSpec s;
      s.name = "glm_payload_preview";
      s.title = "Preview a GLM request";
      s.description =
          "Show the exact JSON body exai would POST to GLM's /chat/completions for these "
          "arguments (messages, temperature, max_tokens, thinking, web search, tools, "
          "tool_choice), without sending anything. Works without a GLM key.";
      s.properties = {
          {"prompt", {{"type", "string"}, {"minLength", 1}, {"description", "The user message"}}},
          {"model",
           {{"type", "string"},
            {"enum", glm_model_names()},
            {"default", "glm-4.5-flash"},
            {"description", "A GLM model (canonical name or alias)"}}},
          {"system_prompt", {{"type", "string"}, {"description", "A system message, if any"}}},
          {"temperature", {{"type", "number"}, {"minimum", 0}, {"maximum", 1}, {"default", 0.3}}},
          {"max_tokens",
           {{"type", "integer"},
            {"minimum", 1},
            {"description", "Answer limit; capped at the model's output limit"}}},
          {"thinking_mode",
           {{"type", "string"},
            {"enum", {"minimal", "low", "medium", "high", "max"}},
            {"description", "GLM thinking models get thinking on (off for minimal)"}}},
          {"use_websearch",
           {{"type", "boolean"},
            {"default", false},
            {"description", "Add GLM's server-side web_search tool"}}},
          {"tools",
           {{"type", "array"},
            {"items", {{"type", "object"}}},
            {"maxItems", 128},
            {"description", "OpenAI-style tools ({type:function, function:{name, parameters}})"}}},
          {"tool_choice",
           {{"type", "string"},
            {"enum", {"auto", "none", "required"}},
            {"description", "Sent with tools (auto when tools are given and this is not)"}}}};
      s.required = {"prompt"};
      return s;
    }();
    return spec;
  }
  ToolResult run(ToolContext& context) const override
  {
    const auto& args = context.arguments;
    const ModelInfo& model =
        ModelCatalog::builtin().resolve(string_arg(args, "model").value_or("glm-4.5-flash"));
    ChatRequest request;
    request.model = model.name;
    if (const auto system = string_arg(args, "system_prompt")) {
      request.messages.emplace_back("system", *system);
    }
    request.messages.emplace_back("user", string_arg(args, "prompt").value_or(""));
    request.temperature = number_arg(args, "temperature", 0.0, 1.0).value_or(0.3);
    if (const auto max_tokens = int_arg(args, "max_tokens", 1, 1 << 30)) {
      request.max_tokens = std::min(*max_tokens, model.max_output_tokens);
    }
    nlohmann::json notes = nlohmann::json::array();
    if (const auto mode = parse_thinking_mode(string_arg(args, "thinking_mode").value_or(""))) {
      if (auto note = apply_thinking(request, kGlmProviderId, model, *mode); !note.empty()) {
        notes.push_back(std::move(note));
      }
    }
    if (bool_arg(args, "use_websearch").value_or(false)) {
      apply_web_search(request, kGlmProviderId);
    }
    if (const auto tools = args.find("tools"); tools != args.end() && tools->is_array()) {
      if (!request.tools.is_array()) {
        request.tools = nlohmann::json::array();
      }
      for (const auto& tool : *tools) {
        request.tools.push_back(tool);
      }
      if (request.tool_choice.empty() && !tools->empty()) {
        request.tool_choice = "auto";
      }
    }
    if (const auto choice = string_arg(args, "tool_choice")) {
      request.tool_choice = *choice;
    }
    const std::string body = openai::chat_request_body(request);
    const ProviderConfig* glm = context.providers.find(kGlmProviderId);
    return ToolSuccess{{envelope(
        name(),
        body,
        "json",
        {{"model", model.name},
         {"provider", std::string(kGlmProviderId)},
         {"endpoint",
          (glm != nullptr ? glm->base_url : std::string(kDefaultGlmUrl)) + "/chat/completions"},
         {"sent", false},
         {"notes", notes}})}};
  }
};

} // namespace

std::unique_ptr<Tool>
make_glm_payload_preview()
{
  return std::make_unique<GlmPayloadPreview>();
}

} // namespace exai::core::tools
