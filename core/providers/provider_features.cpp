#include "core/providers/provider_features.hpp"

#include "core/providers/providers.hpp"

namespace exai::core {

std::optional<ThinkingMode>
parse_thinking_mode(std::string_view text)
{
  if (text == "minimal") {
    return ThinkingMode::minimal;
  }
  if (text == "low") {
    return ThinkingMode::low;
  }
  if (text == "medium") {
    return ThinkingMode::medium;
  }
  if (text == "high") {
    return ThinkingMode::high;
  }
  if (text == "max") {
    return ThinkingMode::max;
  }
  return std::nullopt;
}

std::string
apply_thinking(ChatRequest& request,
               std::string_view provider,
               const ModelInfo& model,
               ThinkingMode mode)
{
  if (provider == kGlmProviderId) {
    if (!model.capabilities.thinking) {
      return "thinking_mode ignored: " + model.name + " has no thinking mode";
    }
    request.extra["thinking"] = {{"type", mode == ThinkingMode::minimal ? "disabled" : "enabled"}};
    return {};
  }
  if (model.capabilities.thinking) {
    return {}; // Kimi's thinking model always reasons
  }
  return "thinking_mode ignored: Kimi takes no thinking parameter; model auto or "
         "kimi-thinking-preview reasons";
}

void
apply_web_search(ChatRequest& request, std::string_view provider)
{
  if (!request.tools.is_array()) {
    request.tools = nlohmann::json::array();
  }
  if (provider == kKimiProviderId) {
    request.tools.push_back(
        {{"type", "builtin_function"}, {"function", {{"name", "$web_search"}}}});
  } else {
    request.tools.push_back(
        {{"type", "web_search"}, {"web_search", {{"enable", true}, {"search_result", true}}}});
  }
  request.tool_choice = "auto";
}

bool
is_builtin_web_search(const ToolCall& call)
{
  return call.type == "builtin_function" && call.name == "$web_search";
}

ChatMessage
web_search_echo(const ToolCall& call)
{
  ChatMessage message("tool", call.arguments);
  message.tool_call_id = call.id;
  message.name = call.name;
  return message;
}

} // namespace exai::core
