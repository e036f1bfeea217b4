#include "core/providers/openai_format.hpp"

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

} // namespace

std::string
chat_request_body(const ChatRequest& request, bool stream)
{
  json body = {{"model", request.model}, {"stream", stream}};
  body["messages"] = json::array();
  for (const auto& message : request.messages) {
    body["messages"].push_back({{"role", message.role}, {"content", message.content}});
  }
  if (request.temperature) {
    body["temperature"] = *request.temperature;
  }
  if (request.max_tokens) {
    body["max_tokens"] = *request.max_tokens;
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
    if (const auto message = choice.find("message"); message != choice.end()) {
      reply.content = string_field(*message, "content");
    }
  }
  reply.finish_reason = string_field(choice, "finish_reason");
  reply.model = string_field(reply_json, "model");
  if (reply.model.empty()) {
    reply.model = std::string(requested_model);
  }
  const auto usage = reply_json.find("usage");
  reply.usage = usage != reply_json.end() && usage->is_object() ? *usage : json::object();
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
