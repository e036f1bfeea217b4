#include "core/tools/model_call.hpp"

#include "core/log.hpp"
#include "core/providers/provider_features.hpp"
#include "core/providers/token_usage.hpp"
#include "core/tools/partial_progress.hpp"

#include <algorithm>

namespace exai::core {

namespace {

// The model asked only for Kimi's builtin web search: exai answers and asks
// again. Other tools are the caller's to handle (kimi_chat_with_tools).
bool
wants_search_round(const ChatReply& reply)
{
  if (reply.tool_calls.empty()) {
    return false;
  }
  for (const auto& call : reply.tool_calls) {
    if (!is_builtin_web_search(call)) {
      return false;
    }
  }
  return true;
}

bool
wants_fallback(const ToolContext& context, const ChatFailure& failure)
{
  return provider_down(failure) && context.plan.automatic && context.plan.fallback &&
         context.fall_back && !context.stop.stop_requested();
}

// `first`, when given, is the first request's outcome, already known.
ChatOutcome
complete_with_search(ToolContext& context,
                     ChatRequest request,
                     ModelCallInfo& info,
                     std::optional<ChatOutcome> first = std::nullopt)
{
  if (context.progress && !request.on_partial) {
    request.on_partial = PartialProgress(context.progress, request.model);
  }
  for (;;) {
    ChatOutcome outcome = first
                              ? std::move(*first)
                              : context.chat.complete(context.plan.provider, request, context.stop);
    first.reset();
    auto* reply = std::get_if<ChatReply>(&outcome);
    if (reply == nullptr || !wants_search_round(*reply)) {
      return outcome;
    }
    if (info.search_rounds >= kMaxSearchRounds) {
      return ChatFailure{
          Errc::provider_error,
          "the model kept asking for web searches (" + std::to_string(kMaxSearchRounds) +
              " rounds); giving up",
          {{"provider", context.plan.provider}, {"search_rounds", info.search_rounds}}};
    }
    ++info.search_rounds;
    if (context.progress) {
      context.progress("web search round " + std::to_string(info.search_rounds));
    }
    ChatMessage asked("assistant", reply->content);
    asked.tool_calls = reply->tool_calls;
    request.messages.push_back(std::move(asked));
    for (const auto& call : reply->tool_calls) {
      request.messages.push_back(web_search_echo(call));
    }
  }
}

ChatOutcome
model_call_from(ToolContext& context,
                const RequestBuilder& build,
                ModelCallInfo& info,
                std::optional<ChatOutcome> first)
{
  // With `first`, the first request is built again for the search rounds
  // that may follow it; its notes were taken when it was first built.
  ModelCallInfo rebuilt;
  ChatOutcome outcome = complete_with_search(
      context, build(context.plan, first ? rebuilt : info), info, std::move(first));
  auto* failure = std::get_if<ChatFailure>(&outcome);
  if (failure == nullptr || !wants_fallback(context, *failure)) {
    return outcome;
  }
  const std::string reason = failure->message;
  log::get("core")->info("fallback from={} to={} reason=\"{}\"",
                         context.plan.model,
                         context.plan.fallback->model,
                         reason);
  if (!context.fall_back(reason)) {
    return outcome;
  }
  if (context.progress) {
    context.progress("falling back to " + context.plan.model + " (" + reason + ")");
  }
  info.search_rounds = 0;
  return complete_with_search(context, build(context.plan, info), info);
}

} // namespace

ChatRequest
model_request(const ToolContext& context,
              const CallPlan& plan,
              double temperature,
              std::optional<int> max_tokens)
{
  ChatRequest request;
  request.model = plan.model;
  request.deadline = context.deadline;
  request.temperature = temperature;
  const ModelInfo* model = context.providers.catalog().find(plan.model);
  if (max_tokens && model != nullptr) {
    request.max_tokens = std::min(*max_tokens, model->max_output_tokens);
  }
  return request;
}

ToolFailure
tool_failure(const ChatFailure& failure)
{
  return ToolFailure{failure.code, failure.message, failure.details};
}

void
require_provider(const CallPlan& plan,
                 std::string_view provider,
                 std::string_view provider_name,
                 std::string_view tool)
{
  if (plan.provider == provider) {
    return;
  }
  const std::string rule = "a " + std::string(provider_name) + " model";
  std::string message = "argument 'model' = \"";
  message.append(plan.model).append("\" is invalid: ").append(tool).append(" needs ").append(rule);
  throw Error(Errc::validation_error,
              std::move(message),
              {{"field", "model"}, {"value", plan.model}, {"rule", rule}});
}

bool
provider_down(const ChatFailure& failure)
{
  if (failure.code == Errc::provider_unavailable || failure.code == Errc::over_capacity) {
    return true;
  }
  if (failure.code == Errc::provider_error) {
    const auto status = failure.details.find("status");
    return status != failure.details.end() && status->is_number_integer() &&
           status->get<int>() >= 500;
  }
  return false;
}

bool
model_call_settled(const ToolContext& context, const ChatOutcome& first)
{
  if (const auto* reply = std::get_if<ChatReply>(&first)) {
    return !wants_search_round(*reply);
  }
  return !wants_fallback(context, std::get<ChatFailure>(first));
}

ChatOutcome
call_model(ToolContext& context, const RequestBuilder& build, ModelCallInfo& info)
{
  return model_call_from(context, build, info, std::nullopt);
}

ChatOutcome
call_model_after(ToolContext& context,
                 const RequestBuilder& build,
                 ModelCallInfo& info,
                 ChatOutcome first)
{
  return model_call_from(context, build, info, std::move(first));
}

ToolResult
run_model_step(ToolContext& context, ModelStep& step)
{
  const ChatOutcome outcome = call_model(context, step.build, step.info);
  return step.finish(context, outcome, step.info);
}

nlohmann::json
reply_metadata(const CallPlan& plan, const ChatReply& reply)
{
  nlohmann::json selection = {{"automatic", plan.automatic}, {"reason", plan.model_reason}};
  if (!plan.fallback_from.empty()) {
    selection["fallback_from"] = plan.fallback_from;
    selection["fallback_reason"] = plan.fallback_reason;
  }
  nlohmann::json meta = {{"model_used", reply.model.empty() ? plan.model : reply.model},
                         {"provider_used", plan.provider},
                         {"model_selection", std::move(selection)}};
  if (!plan.fallback_from.empty()) {
    meta["fallback_from"] = plan.fallback_from;
  }
  meta["usage"] = reply.usage.is_null() ? nlohmann::json::object() : reply.usage;
  meta["tokens"] = to_json(token_usage(reply.usage));
  meta["attempts"] = reply.attempts;
  meta["upstream_latency_ms"] = reply.upstream_latency.count();
  meta["streamed"] = reply.streamed;
  if (reply.time_to_first_token) {
    meta["time_to_first_token_ms"] = reply.time_to_first_token->count();
  }
  return meta;
}

ChatMessage
remembered_message(const ChatMessage& user, std::size_t images)
{
  ChatMessage remembered("user", user.content);
  if (images > 0) {
    remembered.content +=
        "\n\n[" + std::to_string(images) + " image(s) were attached to this message]";
  }
  return remembered;
}

} // namespace exai::core
