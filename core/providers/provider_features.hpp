#pragma once

// What thinking_mode and use_websearch mean for each provider, as pure code:
// GLM's thinking models take {"thinking":{"type":"enabled"|"disabled"}};
// Kimi has no thinking switch (its thinking model is a model choice). Web
// search is Kimi's builtin $web_search function (the client echoes each call
// back) or GLM's server-side web_search tool.

#include "core/providers/chat.hpp"
#include "core/providers/model_catalog.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace exai::core {

enum class ThinkingMode { minimal, low, medium, high, max };

std::optional<ThinkingMode> parse_thinking_mode(std::string_view text);

// Sets the provider's thinking parameter on `request` for `model`. Returns
// a note (for metadata) when the mode cannot be applied to this model, else "".
std::string apply_thinking(ChatRequest& request,
                           std::string_view provider,
                           const ModelInfo& model,
                           ThinkingMode mode);

// Turns on the provider's built-in web search for `request`.
void apply_web_search(ChatRequest& request, std::string_view provider);

// True for Kimi's builtin $web_search call, which Moonshot runs itself once
// the client echoes the call's arguments back as the tool result.
bool is_builtin_web_search(const ToolCall& call);

// The tool message that completes a builtin $web_search call.
ChatMessage web_search_echo(const ToolCall& call);

} // namespace exai::core
