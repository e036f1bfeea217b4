// kimi_intent_analysis: classifies a request into routing hints as strict
// JSON. A reply that is not that JSON gets one repair request; if the
// repaired reply is still not valid the call fails, saying why.

#include "core/tools/builtin.hpp"
#include "core/tools/model_call.hpp"
#include "core/tools/prompts.hpp"
#include "core/util/text.hpp"

#include <algorithm>
#include <optional>

namespace exai::core::tools {

namespace {

constexpr int kMaxAnswerTokens = 512;
constexpr double kTemperature = 0.1;

// What is wrong with a reply, or nullopt when `hints` holds valid hints
// (then normalised in place: provider lower-cased, model canonical).
std::optional<std::string>
check_hints(const std::string& reply, nlohmann::json& hints)
{
  const auto open = reply.find('{');
  const auto close = reply.rfind('}');
  if (open == std::string::npos || close == std::string::npos || close < open) {
    return "the reply contains no JSON object";
  }
  hints = nlohmann::json::parse(reply.substr(open, close - open + 1), nullptr, false);
  if (hints.is_discarded() || !hints.is_object()) {
    return "the reply's JSON object does not parse";
  }
  for (const char* key : {"needs_websearch", "streaming_preferred"}) {
    if (hints.contains(key) && !hints[key].is_boolean()) {
      return std::string("'") + key + "' must be true or false";
    }
  }
  if (!hints.contains("needs_websearch")) {
    return "'needs_websearch' is missing";
  }
  const auto level = hints.find("complexity");
  const std::string complexity =
      level != hints.end() && level->is_string() ? level->get<std::string>() : std::string();
  if (complexity != "simple" && complexity != "moderate" && complexity != "deep") {
    return "'complexity' must be simple, moderate or deep";
  }
  if (!hints.contains("domain") || !hints["domain"].is_string() ||
      hints["domain"].get<std::string>().empty()) {
    return "'domain' must be a non-empty string";
  }
  if (!hints.contains("recommended_provider") || !hints["recommended_provider"].is_string()) {
    return "'recommended_provider' must be kimi or glm";
  }
  const std::string provider = to_lower_ascii(hints["recommended_provider"].get<std::string>());
  if (provider != kKimiProviderId && provider != kGlmProviderId) {
    return "'recommended_provider' must be kimi or glm";
  }
  const ModelInfo* model =
      hints.contains("recommended_model") && hints["recommended_model"].is_string()
          ? ModelCatalog::builtin().find(hints["recommended_model"].get<std::string>())
          : nullptr;
  if (model == nullptr) {
    return "'recommended_model' must name a known Kimi or GLM model";
  }
  if (model->provider_id != provider) {
    return "'recommended_model' " + model->name + " is not a " + provider + " model";
  }
  hints["recommended_provider"] = provider;
  hints["recommended_model"] = model->name;
  hints["streaming_preferred"] = hints.value("streaming_preferred", false);
  nlohmann::json clean;
  for (const char* key : {"needs_websearch",
                          "complexity",
                          "domain",
                          "recommended_provider",
                          "recommended_model",
                          "streaming_preferred"}) {
    clean[key] = hints[key];
  }
  hints = std::move(clean);
  return std::nullopt;
}

class KimiIntentAnalysis final : public Tool {
public:
  const ToolSpec& spec() const override
  {
    static const ToolSpec spec = [] {
      ToolSpec s;
      s.name = "kimi_intent_analysis";
      s.title = "Classify a request for routing";
      s.description =
          "Classify a request into routing hints, as strict JSON: needs_websearch, complexity "
          "(simple|moderate|deep), domain, recommended_provider (kimi|glm), recommended_model "
          "and streaming_preferred. Asks a Kimi model (GLM when Kimi is unavailable under "
          "auto); an answer that is not valid JSON gets one repair attempt, then the call fails "
          "with the reason.";
      s.model_class = ModelClass::kimi;
      s.default_temperature = kTemperature;
      s.common = field::kModel;
      s.properties = {
          {"prompt",
           {{"type", "string"},
            {"minLength", 1},
            {"maxLength", 100000},
            {"description", "The request to classify"}}},
          {"context",
           {{"type", "string"},
            {"maxLength", 100000},
            {"description", "What else the router should know (project, earlier turns)"}}}};
      s.required = {"prompt"};
      return s;
    }();
    return spec;
  }
  ToolResult run(ToolContext& context) const override
  {
    const auto& args = context.arguments;
    std::string text = string_arg(args, "prompt").value_or("");
    if (const auto extra = string_arg(args, "context"); extra && !extra->empty()) {
      text += "\n\n[Context]\n" + *extra;
    }
    const ChatMessage user("user", text);
    std::vector<ChatMessage> repair; // the exchange that asks for a fix, once
    const RequestBuilder build = [&](const CallPlan& plan, ModelCallInfo&) {
      ChatRequest request = model_request(context, plan, kTemperature, kMaxAnswerTokens);
      if (!request.max_tokens) {
        request.max_tokens = kMaxAnswerTokens; // a model the catalog does not know
      }
      request.messages.emplace_back("system", std::string(prompts::get("kimi_intent_analysis")));
      request.messages.push_back(user);
      request.messages.insert(request.messages.end(), repair.begin(), repair.end());
      return request;
    };
    ModelCallInfo info;
    ChatOutcome outcome = call_model(context, build, info);
    if (auto* failure = std::get_if<ChatFailure>(&outcome)) {
      return tool_failure(*failure);
    }
    nlohmann::json hints;
    auto problem = check_hints(std::get<ChatReply>(outcome).content, hints);
    const bool repaired = problem.has_value();
    if (problem) {
      const std::string first_reply = std::get<ChatReply>(outcome).content;
      repair.emplace_back("assistant", first_reply);
      repair.emplace_back("user",
                          "That answer cannot be used: " + *problem +
                              ". Reply again with only the JSON object described in the "
                              "instructions, nothing else.");
      if (context.progress) {
        context.progress("routing JSON invalid (" + *problem + "); asking once for a repair");
      }
      outcome = call_model(context, build, info);
      if (auto* failure = std::get_if<ChatFailure>(&outcome)) {
        return tool_failure(*failure);
      }
      problem = check_hints(std::get<ChatReply>(outcome).content, hints);
      if (problem) {
        return ToolFailure{
            Errc::provider_error,
            "the model's routing answer is not valid JSON after one repair attempt: " + *problem,
            {{"provider", context.plan.provider},
             {"model", context.plan.model},
             {"rule", *problem},
             {"first_reply", printable(first_reply, 300)},
             {"reply", printable(std::get<ChatReply>(outcome).content, 300)}}};
      }
    }
    nlohmann::json metadata = reply_metadata(context.plan, std::get<ChatReply>(outcome));
    metadata["repaired"] = repaired;
    return ToolSuccess{{envelope(name(), hints.dump(), "json", metadata)}};
  }
};

} // namespace

std::unique_ptr<Tool>
make_kimi_intent_analysis()
{
  return std::make_unique<KimiIntentAnalysis>();
}

} // namespace exai::core::tools
