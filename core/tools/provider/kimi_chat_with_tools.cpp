// kimi_chat_with_tools: OpenAI tool calling with Kimi. The client's tools
// are offered to the model; Kimi's builtin $web_search calls are completed
// here (echo round trips, at most kMaxSearchRounds, within the call's
// deadline); any other tool call comes back to the client to run, who then
// calls again with the tool results appended to `messages`.

#include "core/providers/provider_features.hpp"
#include "core/tools/builtin.hpp"
#include "core/tools/model_call.hpp"

#include <algorithm>
#include <optional>

namespace exai::core::tools {

namespace {

nlohmann::json
message_schema()
{
  return {{"type", "object"},
          {"properties",
           {{"role", {{"type", "string"}, {"enum", {"system", "user", "assistant", "tool"}}}},
            {"content", {{"type", "string"}}},
            {"tool_call_id",
             {{"type", "string"}, {"description", "tool messages: the call they answer"}}},
            {"name", {{"type", "string"}, {"description", "tool messages: the function"}}},
            {"tool_calls",
             {{"type", "array"},
              {"items", {{"type", "object"}}},
              {"description", "assistant messages: the calls the model asked for, as returned"}}}}},
          {"required", {"role"}},
          {"additionalProperties", false}};
}

// `object[key]` when it is a string, nullopt when absent; any other type is
// the client's error.
std::optional<std::string>
optional_text(const nlohmann::json& object, const char* key, const std::string& at)
{
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) {
    return std::nullopt;
  }
  if (!it->is_string()) {
    const std::string field = at + "." + key;
    throw Error(Errc::validation_error,
                "argument '" + field + "' must be a string",
                {{"field", field}, {"value", it->dump()}, {"rule", "must be a string"}});
  }
  return it->get<std::string>();
}

ChatMessage
to_message(const nlohmann::json& item, std::size_t index)
{
  const std::string at = "messages[" + std::to_string(index) + "]";
  ChatMessage message(item["role"].get<std::string>(), item.value("content", ""));
  message.tool_call_id = item.value("tool_call_id", "");
  message.name = item.value("name", "");
  if (message.role == "tool" && message.tool_call_id.empty()) {
    throw Error(Errc::validation_error,
                "argument '" + at + ".tool_call_id' is required for a tool message",
                {{"field", at + ".tool_call_id"}, {"rule", "required for role tool"}});
  }
  if (const auto calls = item.find("tool_calls"); calls != item.end() && calls->is_array()) {
    for (std::size_t i = 0; i < calls->size(); ++i) {
      const auto& call = (*calls)[i];
      const auto function = call.find("function");
      if (function == call.end() || !function->is_object() || !function->contains("name") ||
          !(*function)["name"].is_string()) {
        const std::string field = at + ".tool_calls[" + std::to_string(i) + "].function.name";
        throw Error(Errc::validation_error,
                    "argument '" + field + "' is required",
                    {{"field", field}, {"rule", "required"}});
      }
      const std::string at_call = at + ".tool_calls[" + std::to_string(i) + "]";
      ToolCall parsed;
      parsed.id = optional_text(call, "id", at_call).value_or("");
      parsed.type = optional_text(call, "type", at_call).value_or("function");
      parsed.name = (*function)["name"].get<std::string>();
      const auto arguments = function->find("arguments");
      parsed.arguments = arguments == function->end() ? "{}"
                         : arguments->is_string()     ? arguments->get<std::string>()
                                                      : arguments->dump();
      message.tool_calls.push_back(std::move(parsed));
    }
  }
  return message;
}

class KimiChatWithTools final : public Tool {
public:
  const ToolSpec& spec() const override
  {
    static const ToolSpec spec = [] {
      ToolSpec s;
      s.name = "kimi_chat_with_tools";
      s.title = "Kimi chat with tool calling";
      s.description =
          "Chat with a Kimi model that may call tools (OpenAI tool calling). Kimi's built-in "
          "$web_search (use_websearch) is completed by exai, at most " +
          std::to_string(kMaxSearchRounds) +
          " search rounds within the call's deadline. Calls of your own tools come back in the "
          "reply (tool_calls); run them and call again with the assistant message and one tool "
          "message per call appended to messages.";
      s.model_class = ModelClass::kimi;
      s.default_temperature = 0.6;
      s.common = field::kModel | field::kTemperature;
      s.properties = {
          {"messages",
           {{"type", "array"},
            {"items", message_schema()},
            {"minItems", 1},
            {"maxItems", 1000},
            {"description", "The conversation so far, OpenAI style"}}},
          {"tools",
           {{"type", "array"},
            {"items", {{"type", "object"}}},
            {"maxItems", 128},
            {"description", "OpenAI-style tools ({type:function, function:{name, parameters}})"}}},
          {"tool_choice",
           {{"type", "string"},
            {"enum", {"auto", "none", "required"}},
            {"description", "Whether the model must, may or must not call a tool (default auto)"}}},
          {"use_websearch",
           {{"type", "boolean"},
            {"default", false},
            {"description", "Offer Kimi's built-in $web_search, completed by exai"}}},
          {"max_tokens",
           {{"type", "integer"},
            {"minimum", 1},
            {"description", "Limit of the answer, in tokens"}}}};
      s.required = {"messages"};
      return s;
    }();
    return spec;
  }
  CallPlan plan(const PlanInput& input) const override
  {
    CallPlan plan = plan_model(input, ModelClass::kimi);
    if (!plan.automatic) {
      require_provider(plan, kKimiProviderId, "Kimi", name());
    }
    return plan;
  }
  ToolResult run(ToolContext& context) const override
  {
    const auto& args = context.arguments;
    std::vector<ChatMessage> messages;
    const auto& list = args["messages"];
    for (std::size_t i = 0; i < list.size(); ++i) {
      messages.push_back(to_message(list[i], i));
    }
    const bool web_search = bool_arg(args, "use_websearch").value_or(false);
    const double temperature =
        number_arg(args, "temperature", 0.0, 1.0).value_or(spec().default_temperature);
    const auto max_tokens = int_arg(args, "max_tokens", 1, 1 << 30);
    const auto choice = string_arg(args, "tool_choice");
    const RequestBuilder build = [&](const CallPlan& plan, ModelCallInfo&) {
      ChatRequest request = model_request(context, plan, temperature, max_tokens);
      request.messages = messages;
      if (web_search) {
        apply_web_search(request, plan.provider);
      }
      if (const auto tools = args.find("tools"); tools != args.end() && tools->is_array()) {
        if (!request.tools.is_array()) {
          request.tools = nlohmann::json::array();
        }
        for (const auto& tool : *tools) {
          request.tools.push_back(tool);
        }
        if (request.tool_choice.empty()) {
          request.tool_choice = "auto";
        }
      }
      if (choice) {
        request.tool_choice = *choice;
      }
      return request;
    };
    ModelCallInfo info;
    ChatOutcome outcome = call_model(context, build, info);
    if (auto* failure = std::get_if<ChatFailure>(&outcome)) {
      return tool_failure(*failure);
    }
    const auto& reply = std::get<ChatReply>(outcome);
    nlohmann::json calls = nlohmann::json::array();
    for (const auto& call : reply.tool_calls) {
      calls.push_back({{"id", call.id},
                       {"type", call.type},
                       {"function", {{"name", call.name}, {"arguments", call.arguments}}}});
    }
    const nlohmann::json answer = {
        {"content", reply.content}, {"finish_reason", reply.finish_reason}, {"tool_calls", calls}};
    nlohmann::json metadata = reply_metadata(context.plan, reply);
    metadata["search_rounds"] = info.search_rounds;
    metadata["pending_tool_calls"] = calls.size();
    return ToolSuccess{{envelope(name(), answer.dump(), "json", metadata)}};
  }
};

} // namespace

std::unique_ptr<Tool>
make_kimi_chat_with_tools()
{
  return std::make_unique<KimiChatWithTools>();
}

} // namespace exai::core::tools
