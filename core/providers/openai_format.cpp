#include "core/providers/openai_format.hpp"

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

json
message_json(const ChatMessage& message, const Base64Fn& base64)
{
  json out = {{"role", message.role}};
  if (message.images.empty()) {
    out["content"] = message.content;
  } else {
    json parts = json::array({{{"type", "text"}, {"text", message.content}}});
    for (const auto& image : message.images) {
      parts.push_back(image_part(image, base64));
    }
    out["content"] = std::move(parts);
  }
  if (!message.tool_calls.empty()) {
    json calls = json::array();
    for (const auto& call : message.tool_calls) {
      calls.push_back({{"id", call.id},
                       {"type", call.type},
                       {"function", {{"name", call.name}, {"arguments", call.arguments}}}});
    }
    out["tool_calls"] = std::move(calls);
  }
  if (!message.tool_call_id.empty()) {
    out["tool_call_id"] = message.tool_call_id;
  }
  if (!message.name.empty()) {
    out["name"] = message.name;
  }
  return out;
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
        call.arguments = arguments->is_string()
                             ? arguments->get<std::string>()
                             : arguments->dump(-1, ' ', false, json::error_handler_t::replace);
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
  json body = {{"model", request.model}, {"stream", stream}};
  body["messages"] = json::array();
  for (const auto& message : request.messages) {
    body["messages"].push_back(message_json(message, base64));
  }
  if (request.temperature) {
    body["temperature"] = *request.temperature;
  }
  if (request.max_tokens) {
    body["max_tokens"] = *request.max_tokens;
  }
  if (request.tools.is_array() && !request.tools.empty()) {
    body["tools"] = request.tools;
    if (!request.tool_choice.empty()) {
      body["tool_choice"] = request.tool_choice;
    }
  }
  if (request.extra.is_object()) {
    for (const auto& [key, value] : request.extra.items()) {
      body[key] = value;
    }
  }
  return body.dump(-1, ' ', false, json::error_handler_t::replace);
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
