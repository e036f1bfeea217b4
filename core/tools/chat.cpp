// chat: a (multi-turn) conversation with a Kimi or GLM model.

#include "core/calls/conversation_store.hpp"
#include "core/tools/builtin.hpp"

namespace exai::core::tools {

namespace {

constexpr std::string_view kDefaultSystemPrompt =
    "You are a senior engineer and thinking partner. Answer precisely, say when you are "
    "unsure, and prefer concrete, verifiable statements.";

class Chat final : public Tool {
public:
  std::string_view name() const override { return "chat"; }
  std::string_view description() const override
  {
    return "General chat and collaborative thinking with a Kimi or GLM model. Pass the "
           "continuation_id of an earlier answer to continue that conversation.";
  }
  nlohmann::json input_schema() const override
  {
    return {
        {"type", "object"},
        {"properties",
         {{"prompt", {{"type", "string"}, {"description", "Your question or message"}}},
          {"model",
           {{"type", "string"},
            {"description", "Model name or alias (default: DEFAULT_MODEL); see listmodels"}}},
          {"temperature",
           {{"type", "number"}, {"minimum", 0}, {"maximum", 2}, {"description", "0 to 2"}}},
          {"system_prompt", {{"type", "string"}, {"description", "Replaces the system prompt"}}},
          {"continuation_id",
           {{"type", "string"}, {"description", "Continue the conversation with this id"}}},
          {"max_tokens", {{"type", "integer"}, {"minimum", 1}, {"description", "Output limit"}}}}},
        {"required", {"prompt"}}};
  }

  CallPlan plan(const nlohmann::json& arguments, const ProviderRegistry& providers) const override
  {
    if (string_arg(arguments, "prompt").value_or("").empty()) {
      throw Error(Errc::validation_error, "argument 'prompt' is required");
    }
    (void)string_arg(arguments, "system_prompt");
    (void)number_arg(arguments, "temperature", 0.0, 2.0);
    const ResolvedModel resolved =
        providers.resolve_model(string_arg(arguments, "model").value_or(""));
    (void)int_arg(arguments, "max_tokens", 1, resolved.model->max_output_tokens);
    return {resolved.provider->id,
            resolved.model->name,
            string_arg(arguments, "continuation_id").value_or("")};
  }

  ToolResult run(ToolContext& context) const override
  {
    const auto& args = context.arguments;
    const std::string& conversation_id = context.plan.conversation_id;
    Conversation history;
    if (!conversation_id.empty()) {
      auto found = context.conversations.find(conversation_id);
      if (!found) {
        return ToolFailure{Errc::validation_error,
                           "conversation '" + conversation_id +
                               "' was not found or has expired; start a new one without "
                               "continuation_id",
                           {{"continuation_id", conversation_id}}};
      }
      if (found->turns >= context.conversations.max_turns()) {
        return ToolFailure{Errc::validation_error,
                           "conversation '" + conversation_id + "' reached its limit of " +
                               std::to_string(context.conversations.max_turns()) + " turns",
                           {{"continuation_id", conversation_id}}};
      }
      history = std::move(*found);
    }

    ChatRequest request;
    request.model = context.plan.model;
    request.deadline = context.deadline;
    request.temperature = number_arg(args, "temperature", 0.0, 2.0);
    request.max_tokens = int_arg(args, "max_tokens", 1, 1 << 30);
    request.messages.push_back(
        {"system", string_arg(args, "system_prompt").value_or(std::string(kDefaultSystemPrompt))});
    request.messages.insert(
        request.messages.end(), history.messages.begin(), history.messages.end());
    const ChatMessage user{"user", string_arg(args, "prompt").value_or("")};
    request.messages.push_back(user);

    ChatOutcome outcome = context.chat.complete(context.plan.provider, request, context.stop);
    if (auto* failure = std::get_if<ChatFailure>(&outcome)) {
      return ToolFailure{failure->code, failure->message, failure->details};
    }
    const auto& reply = std::get<ChatReply>(outcome);
    const auto [id, turns] =
        context.conversations.record_turn(conversation_id, user, {"assistant", reply.content});
    const int remaining = context.conversations.max_turns() - turns;
    nlohmann::json offer = nullptr;
    if (remaining > 0) {
      offer = {{"continuation_id", id},
               {"remaining_turns", remaining},
               {"note",
                "Pass continuation_id to continue this conversation (" + std::to_string(remaining) +
                    " turns left)."}};
    }
    const nlohmann::json metadata = {
        {"model_used", reply.model.empty() ? request.model : reply.model},
        {"provider_used", context.plan.provider},
        {"finish_reason", reply.finish_reason},
        {"usage", reply.usage.is_null() ? nlohmann::json::object() : reply.usage},
        {"attempts", reply.attempts},
        {"upstream_latency_ms", reply.upstream_latency.count()},
        {"conversation_turns", turns}};
    return ToolSuccess{{envelope(name(), reply.content, "text", metadata, offer)}};
  }
};

} // namespace

std::unique_ptr<Tool>
make_chat()
{
  return std::make_unique<Chat>();
}

} // namespace exai::core::tools
