// kimi_capture_headers: one non-streaming Kimi chat call that returns the
// normalised reply together with the answer's cache and idempotency headers
// (Moonshot's msh-* headers, request ids). Without a Kimi key it skips.

#include "core/providers/openai_format.hpp"
#include "core/tools/builtin.hpp"
#include "core/tools/model_call.hpp"
#include "core/tools/provider/provider_files.hpp"

#include <algorithm>

namespace exai::core::tools {

namespace {

bool
interesting(const std::string& header)
{
  return header.rfind("msh-", 0) == 0 || header.rfind("x-msh-", 0) == 0 ||
         header.find("cache") != std::string::npos ||
         header.find("idempotency") != std::string::npos ||
         header.find("request-id") != std::string::npos;
}

class KimiCaptureHeaders final : public Tool {
public:
  const ToolSpec& spec() const override
  {
    static const ToolSpec spec = [] {
      ToolSpec s;
      s.name = "kimi_capture_headers";
      s.title = "Kimi call with response headers";
      s.description =
          "Make one non-streaming Kimi chat call and return the reply (content, finish reason, "
          "usage) with the answer's cache and idempotency headers (msh-*, request ids). Sends "
          "idempotency_key as Idempotency-Key and context_cache_token as "
          "Msh-Context-Cache-Token. Skips, saying so, when no Kimi key is configured.";
      s.model_class = ModelClass::kimi;
      s.default_temperature = 0.6;
      s.common = field::kModel | field::kTemperature;
      s.properties = {
          {"prompt", {{"type", "string"}, {"minLength", 1}, {"maxLength", 100000}}},
          {"system_prompt", {{"type", "string"}, {"maxLength", 100000}}},
          {"idempotency_key", {{"type", "string"}, {"minLength", 1}, {"maxLength", 256}}},
          {"context_cache_token", {{"type", "string"}, {"minLength", 1}, {"maxLength", 1024}}}};
      s.required = {"prompt"};
      return s;
    }();
    return spec;
  }
  CallPlan plan(const PlanInput& input) const override
  {
    const ProviderConfig* kimi = input.providers.find(kKimiProviderId);
    if (kimi == nullptr || !kimi->available()) {
      return {}; // run() reports the skip; nothing to reserve
    }
    CallPlan plan = plan_model(input, ModelClass::kimi);
    require_provider(plan, kKimiProviderId, "Kimi", name());
    plan.fallback.reset(); // the point is Kimi's headers
    return plan;
  }
  bool reusable() const override { return false; }
  ToolResult run(ToolContext& context) const override
  {
    if (context.plan.provider.empty()) {
      const nlohmann::json skipped = {{"status", "skipped"},
                                      {"reason", "no Kimi key configured (set KIMI_API_KEY)"}};
      return ToolSuccess{{envelope(name(), skipped.dump(), "json", {{"skipped", true}})}};
    }
    const auto& args = context.arguments;
    ChatRequest chat;
    chat.model = context.plan.model;
    chat.temperature =
        number_arg(args, "temperature", 0.0, 1.0).value_or(spec().default_temperature);
    if (const auto system = string_arg(args, "system_prompt")) {
      chat.messages.emplace_back("system", *system);
    }
    chat.messages.emplace_back("user", string_arg(args, "prompt").value_or(""));
    ProviderHttpRequest request = http_request(context, "POST", "/chat/completions");
    request.json_body = openai::chat_request_body(chat);
    if (const auto key = string_arg(args, "idempotency_key")) {
      request.headers["Idempotency-Key"] = *key;
    }
    if (const auto token = string_arg(args, "context_cache_token")) {
      request.headers["Msh-Context-Cache-Token"] = *token;
    }
    auto outcome = provider_http(context).send(kKimiProviderId, request, context.stop);
    if (auto* failure = std::get_if<ChatFailure>(&outcome)) {
      return tool_failure(*failure);
    }
    const auto& answer = std::get<ProviderHttpReply>(outcome);
    auto parsed = openai::parse_chat_reply(answer.body, chat.model);
    if (auto* problem = std::get_if<openai::ReplyProblem>(&parsed)) {
      return ToolFailure{Errc::provider_error,
                         "Kimi returned an unreadable reply (" + problem->what + ")",
                         {{"provider", std::string(kKimiProviderId)}}};
    }
    auto& reply = std::get<ChatReply>(parsed);
    reply.upstream_latency = answer.latency;
    nlohmann::json headers = nlohmann::json::object();
    for (const auto& [header, value] : answer.headers) {
      if (interesting(header)) {
        headers[header] = value;
      }
    }
    const nlohmann::json report = {
        {"content", reply.content},
        {"finish_reason", reply.finish_reason},
        {"usage", reply.usage.is_null() ? nlohmann::json::object() : reply.usage},
        {"headers", headers}};
    return ToolSuccess{
        {envelope(name(), report.dump(), "json", reply_metadata(context.plan, reply))}};
  }
};

} // namespace

std::unique_ptr<Tool>
make_kimi_capture_headers()
{
  return std::make_unique<KimiCaptureHeaders>();
}

} // namespace exai::core::tools
