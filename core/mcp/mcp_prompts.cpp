#include "core/mcp/mcp_prompts.hpp"

#include <string_view>

namespace exai::core::mcp {

namespace {

using nlohmann::json;

constexpr std::string_view kContinue = "continue";

json
arguments_for(std::string_view name)
{
  json args = json::array();
  if (name == kContinue) {
    args.push_back({{"name", "continuation_id"},
                    {"description", "the continuation_id an earlier exai reply gave"},
                    {"required", true}});
  }
  args.push_back({{"name", "prompt"},
                  {"description", "what to ask or work on (the client may ask for it)"},
                  {"required", false}});
  args.push_back({{"name", "model"},
                  {"description", "a model name from listmodels, or auto (the default)"},
                  {"required", false}});
  args.push_back(
      {{"name", "thinking_mode"},
       {"description", "minimal, low, medium, high or max: how hard the model should think"},
       {"required", false}});
  return args;
}

// The first sentence of a tool's description: enough for a command menu.
std::string
summary(const std::string& description)
{
  const auto end = description.find(". ");
  std::string first = end == std::string::npos ? description : description.substr(0, end + 1);
  if (first.size() > 200) {
    first.resize(197); // in place: GCC 12 -O2 misreads substr() + "..." (-Warray-bounds)
    first += "...";
  }
  return first;
}

const json*
find_tool(const json& daemon_tools, std::string_view name)
{
  if (!daemon_tools.is_array()) {
    return nullptr;
  }
  for (const auto& tool : daemon_tools) {
    if (tool.is_object() && tool.value("name", std::string()) == name) {
      return &tool;
    }
  }
  return nullptr;
}

} // namespace

json
prompts_list_result(const json& daemon_tools)
{
  json prompts = json::array();
  if (daemon_tools.is_array()) {
    for (const auto& tool : daemon_tools) {
      if (!tool.is_object() || !tool.contains("name") || !tool["name"].is_string()) {
        continue;
      }
      const std::string name = tool["name"];
      prompts.push_back({{"name", name},
                         {"description",
                          "Ask the client's model to use exai's " + name + " tool. " +
                              summary(tool.value("description", std::string()))},
                         {"arguments", arguments_for(name)}});
    }
  }
  prompts.push_back({{"name", std::string(kContinue)},
                     {"description",
                      "Continue an earlier exai conversation (chat or a workflow tool) by its "
                      "continuation_id."},
                     {"arguments", arguments_for(kContinue)}});
  return {{"prompts", std::move(prompts)}};
}

std::string
prompt_get_response(const json& id, const json& params, const json& daemon_tools)
{
  const std::string name = params.value("name", std::string());
  const json arguments = params.value("arguments", json::object());
  if (!arguments.is_object()) {
    return error_response(id, RpcError{kInvalidParams, "params.arguments must be an object", {}});
  }
  for (const auto& [key, value] : arguments.items()) {
    if (!value.is_string()) {
      return error_response(id,
                            RpcError{kInvalidParams,
                                     "prompt argument " + key + " must be a string",
                                     json{{"argument", key}}});
    }
  }
  const auto arg = [&](const char* key) { return arguments.value(key, std::string()); };
  std::string text;
  if (name == kContinue) {
    if (arg("continuation_id").empty()) {
      return error_response(id,
                            RpcError{kInvalidParams,
                                     "prompt continue needs the argument continuation_id",
                                     json{{"argument", "continuation_id"}}});
    }
    text = "Continue the exai conversation " + arg("continuation_id") +
           ": call the exai tool that started it again with continuation_id \"" +
           arg("continuation_id") + "\"";
  } else {
    if (find_tool(daemon_tools, name) == nullptr) {
      return error_response(id,
                            RpcError{kInvalidParams,
                                     "unknown prompt " + name + " (prompts/list names them)",
                                     json{{"name", name}}});
    }
    text = "Use the exai tool " + name;
  }
  if (!arg("model").empty()) {
    text += " with model \"" + arg("model") + "\"";
  }
  if (!arg("thinking_mode").empty()) {
    text += (arg("model").empty() ? " with" : " and") + std::string(" thinking_mode \"") +
            arg("thinking_mode") + "\"";
  }
  text += arg("prompt").empty() ? "." : " for the following:\n\n" + arg("prompt");
  const json result = {
      {"description", name == kContinue ? "Continue an exai conversation" : "Use exai's " + name},
      {"messages",
       json::array({{{"role", "user"}, {"content", {{"type", "text"}, {"text", text}}}}})}};
  return result_response(id, result);
}

std::string
completion_response(const json& id, const json& params, const json& daemon_tools)
{
  constexpr std::size_t kMaxValues = 100; // MCP's limit per response
  const json& ref = params["ref"];
  const json& argument = params["argument"];
  const std::string name = argument.value("name", std::string());
  const std::string typed = argument.value("value", std::string());
  json values = json::array();
  std::size_t total = 0;
  if (ref.value("type", std::string()) == "ref/prompt") {
    const std::string prompt = ref.value("name", std::string());
    // `continue` takes the same model and thinking mode as chat.
    const json* tool = find_tool(daemon_tools, prompt == kContinue ? "chat" : prompt);
    if (tool != nullptr && (name == "model" || name == "thinking_mode")) {
      const json schema = tool->value("inputSchema", json::object());
      const json property = schema.is_object()
                                ? schema.value("properties", json::object()).value(name, json())
                                : json();
      const json choices = property.is_object() ? property.value("enum", json::array()) : json();
      for (const auto& choice : choices) {
        if (choice.is_string() && choice.get_ref<const std::string&>().rfind(typed, 0) == 0) {
          ++total;
          if (values.size() < kMaxValues) {
            values.push_back(choice);
          }
        }
      }
    }
  }
  return result_response(
      id,
      {{"completion", {{"values", values}, {"total", total}, {"hasMore", total > values.size()}}}});
}

} // namespace exai::core::mcp
