#pragma once

// One model call of a tool, with what every model-calling tool needs around
// it: the request rebuilt for whichever provider the call is on, Kimi's
// $web_search round trips completed (bounded), and — for auto calls — one
// move to the other provider when the first is unavailable.

#include "core/tools/tool.hpp"

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace exai::core {

// Round trips of Kimi's builtin web search before exai gives up.
inline constexpr int kMaxSearchRounds = 4;

struct ModelCallInfo {
  int search_rounds = 0;          // $web_search round trips completed
  std::vector<std::string> notes; // settings that could not be applied
};

// Builds the request for the call's current plan (called again after a
// fallback, so provider-specific fields follow the provider).
using RequestBuilder = std::function<ChatRequest(const CallPlan& plan, ModelCallInfo& info)>;

// Runs the call; while a streamed answer arrives, progress notes carry its
// partial output (PartialProgress). A failure that means "this provider cannot serve now"
// (circuit open or unreachable, 5xx after retries, at capacity) moves an
// auto call to its fallback once, within the same deadline.
ChatOutcome call_model(ToolContext& context, const RequestBuilder& build, ModelCallInfo& info);

// call_model once the first request's outcome, `first`, is known (the
// engine got it without a call thread): what is left of web-search rounds
// and the fallback. Blocking.
ChatOutcome call_model_after(ToolContext& context,
                             const RequestBuilder& build,
                             ModelCallInfo& info,
                             ChatOutcome first);

// Whether call_model_after would return `first` as it is: no web-search
// round to make and no fallback to take. Only then may the call finish
// without a call thread.
bool model_call_settled(const ToolContext& context, const ChatOutcome& first);

// A tool's model call set up for the engine to carry without a call thread
// (Tool::model_step): the request for the call's plan, and how the outcome
// becomes the tool's result.
struct ModelStep {
  RequestBuilder build;
  ModelCallInfo info;
  std::function<ToolResult(ToolContext& context, const ChatOutcome& outcome, ModelCallInfo& info)>
      finish;
};

// The whole step on this thread, blocking: call_model, then finish. What a
// tool's run() does with the step its model_step() would give.
ToolResult run_model_step(ToolContext& context, ModelStep& step);

// A request for `plan`'s model within the call's deadline, at `temperature`.
// `max_tokens`, when given, is capped at what the model can produce (and left
// out for a model the catalog does not know).
ChatRequest model_request(const ToolContext& context,
                          const CallPlan& plan,
                          double temperature,
                          std::optional<int> max_tokens = std::nullopt);

// A failed model call as the tool's failure: code, message and details kept.
ToolFailure tool_failure(const ChatFailure& failure);

// Throws Error(validation_error) on the `model` argument unless `plan` is on
// `provider`: tools that use one provider's own features need its models.
void require_provider(const CallPlan& plan,
                      std::string_view provider,
                      std::string_view provider_name,
                      std::string_view tool);

// True for failures that justify the fallback.
bool provider_down(const ChatFailure& failure);

// A model reply's facts for a result's metadata: model_used, provider_used,
// model_selection {automatic, reason, fallback_from?, fallback_reason?},
// usage (the provider's object), tokens {prompt, completion, cached},
// attempts, upstream_latency_ms, streamed, time_to_first_token_ms (streamed).
nlohmann::json reply_metadata(const CallPlan& plan, const ChatReply& reply);

// The user message as a conversation keeps it: its text, and a note instead
// of the bytes of the `images` attached to it.
ChatMessage remembered_message(const ChatMessage& user, std::size_t images);

} // namespace exai::core
