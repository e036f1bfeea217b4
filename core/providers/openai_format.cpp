#include "core/providers/openai_format.hpp"

#include <array>
#include <stdexcept>

namespace exai::core::openai {

namespace {

using nlohmann::json;

std::string
string_field(const json& object, const char* key)
{
  if (!object.is_object()) {
    return {};
  }
  const auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

json
image_part(const ChatImage& image, const Base64Fn& base64)
{
  std::string url = image.data_url;
  if (url.empty()) {
    if (!base64) {
      throw std::invalid_argument("an image read from a file needs a base64 encoder");
    }
    url = "data:" + image.mime + ";base64," + base64(image.bytes);
  }
  return {{"type", "image_url"}, {"image_url", {{"url", std::move(url)}}}};
}

std::string
dumped(const json& value)
{
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

// The escaped JSON text of `text`, from a small per-thread cache: system
// prompts repeat on every call of a tool, and escaping is per character.
const std::string&
dumped_cached(const std::string& text)
{
  struct Entry {
    std::string text;
    std::string escaped;
  };
  thread_local std::array<Entry, 8> cache;
  thread_local std::size_t next = 0;
  for (const auto& entry : cache) {
    if (!entry.escaped.empty() && entry.text == text) {
      return entry.escaped;
    }
  }
  Entry& entry = cache[next++ % cache.size()];
  entry.text = text;
  entry.escaped = dumped(text);
  return entry.escaped;
}

// One message as JSON text, written member by member.
void
append_message(std::string& out, const ChatMessage& message, const Base64Fn& base64)
{
  out.append("{\"role\":").append(dumped(message.role)).append(",\"content\":");
  if (message.images.empty()) {
    out.append(message.role == "system" ? dumped_cached(message.content) : dumped(message.content));
  } else {
    json parts = json::array({{{"type", "text"}, {"text", message.content}}});
    for (const auto& image : message.images) {
      parts.push_back(image_part(image, base64));
    }
    out.append(dumped(parts));
  }
  if (!message.tool_calls.empty()) {
    json calls = json::array();
    for (const auto& call : message.tool_calls) {
      calls.push_back({{"id", call.id},
                       {"type", call.type},
                       {"function", {{"name", call.name}, {"arguments", call.arguments}}}});
    }
    out.append(",\"tool_calls\":").append(dumped(calls));
  }
  if (!message.tool_call_id.empty()) {
    out.append(",\"tool_call_id\":").append(dumped(message.tool_call_id));
  }
  if (!message.name.empty()) {
    out.append(",\"name\":").append(dumped(message.name));
  }
  out.push_back('}');
}

std::vector<ToolCall>
tool_calls_of(const json& message)
{
  std::vector<ToolCall> calls;
  const auto list = message.find("tool_calls");
  if (list == message.end() || !list->is_array()) {
    return calls;
  }
  for (const auto& item : *list) {
    if (!item.is_object()) {
      continue;
    }
    ToolCall call;
    call.id = string_field(item, "id");
    call.type = string_field(item, "type");
    if (const auto function = item.find("function");
        function != item.end() && function->is_object()) {
      call.name = string_field(*function, "name");
      const auto arguments = function->find("arguments");
      if (arguments != function->end()) {
        call.arguments =
            arguments->is_string() ? arguments->get<std::string>() : dumped(*arguments);
      }
    }
    calls.push_back(std::move(call));
  }
  return calls;
}

} // namespace

std::string
chat_request_body(const ChatRequest& request, bool stream, const Base64Fn& base64)
{
  json rest = {{"model", request.model}, {"stream", stream}};
  if (request.temperature) {
    rest["temperature"] = *request.temperature;
  }
  if (request.max_tokens) {
    rest["max_tokens"] = *request.max_tokens;
  }
  if (request.tools.is_array() && !request.tools.empty()) {
    rest["tools"] = request.tools;
    if (!request.tool_choice.empty()) {
      rest["tool_choice"] = request.tool_choice;
    }
  }
  if (request.extra.is_object()) {
    for (const auto& [key, value] : request.extra.items()) {
      rest[key] = value;
    }
  }
  if (rest.contains("messages")) {
    return dumped(rest); // the provider's own list
  }
  // The messages are written one by one into the text rather than built into
  // the tree: the system prompt, the same long text on every call of a tool,
  // is then escaped once per thread instead of copied and escaped per call.
  std::size_t size = 256;
  for (const auto& message : request.messages) {
    size += message.content.size() + message.content.size() / 8 + 64; // room for escapes
  }
  std::string out;
  out.reserve(size);
  out.append("{\"messages\":[");
  for (std::size_t i = 0; i < request.messages.size(); ++i) {
    if (i > 0) {
      out.push_back(',');
    }
    append_message(out, request.messages[i], base64);
  }
  out.append("],");
  const std::string tail = dumped(rest);
  out.append(tail, 1); // rest holds model and stream, so it is never "{}"
  return out;
}

std::variant<ChatReply, ReplyProblem>
parse_chat_reply(std::string_view body, std::string_view requested_model)
{
  const json reply_json = json::parse(body, nullptr, false);
  if (reply_json.is_discarded() || !reply_json.is_object()) {
    return ReplyProblem{"malformed JSON"};
  }
  const auto choices = reply_json.find("choices");
  if (choices == reply_json.end() || !choices->is_array() || choices->empty()) {
    return ReplyProblem{"no choices"};
  }
  const json& choice = choices->front();
  ChatReply reply;
  if (choice.is_object()) {
    if (const auto message = choice.find("message");
        message != choice.end() && message->is_object()) {
      reply.content = string_field(*message, "content");
      reply.tool_calls = tool_calls_of(*message);
    }
  }
  reply.finish_reason = string_field(choice, "finish_reason");
  reply.model = string_field(reply_json, "model");
  if (reply.model.empty()) {
    reply.model = std::string(requested_model);
  }
  const auto usage = reply_json.find("usage");
  reply.usage = usage != reply_json.end() && usage->is_object() ? *usage : json::object();
  if (const auto search = reply_json.find("web_search"); search != reply_json.end()) {
    reply.web_search = *search;
  }
  return reply;
}

std::string
error_code(std::string_view body)
{
  const json error_json = json::parse(body, nullptr, false);
  if (error_json.is_discarded() || !error_json.is_object()) {
    return {};
  }
  const auto error = error_json.find("error");
  if (error == error_json.end() || !error->is_object()) {
    return {};
  }
  const auto code = error->find("code");
  if (code == error->end()) {
    return {};
  }
  if (code->is_string()) {
    return code->get<std::string>();
  }
  if (code->is_number_integer()) {
    return std::to_string(code->get<long long>());
  }
  return {};
}

ErrorClass
classify_status(int status, std::string_view display_name, std::string_view upstream_code)
{
  const std::string name(display_name);
  ErrorClass c;
  if (status == 429) {
    c.code = Errc::over_capacity;
    c.retryable = true;
    c.provider_fault = false;
    c.message = upstream_code == "1302"
                    ? name + " is at capacity (code 1302: too many concurrent requests)"
                    : name + " rate limit (HTTP 429)";
  } else if (status >= 500 || status == 408) {
    c.retryable = true;
    c.message = name + " returned HTTP " + std::to_string(status);
  } else {
    c.provider_fault = false;
    c.message =
        name + " rejected the request: HTTP " + std::to_string(status) +
        (status == 401 || status == 403 ? " (authentication failed; check the API key)" : "");
  }
  return c;
}

} // namespace exai::core::openai
