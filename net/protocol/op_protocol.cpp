#include "net/protocol/op_protocol.hpp"

#include "core/tools/tool_name.hpp"
#include "core/util/json_text.hpp"
#include "core/util/random_id.hpp"
#include "net/protocol/op_frames.hpp"

#include <Poco/Base64Encoder.h>

#include <sstream>

namespace exai::net::protocol {

namespace {

using nlohmann::json;

std::string
dump(const json& value)
{
  // Replace invalid UTF-8 rather than throw: error messages may quote input.
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

} // namespace

std::variant<json, FrameProblem>
parse_frame(std::string_view text)
{
  auto parsed = core::parse_json(text);
  if (const auto* problem = std::get_if<core::JsonProblem>(&parsed)) {
    return FrameProblem{core::Errc::validation_error,
                        "frame is " +
                            (problem->kind == core::JsonProblem::Kind::too_deep
                                 ? problem->message
                                 : "not valid JSON (RFC 8259; numbers must fit a double)"),
                        core::top_level_string(text, "op"),
                        core::top_level_string(text, "request_id")};
  }
  json& value = std::get<json>(parsed);
  if (!value.is_object()) {
    return FrameProblem{core::Errc::validation_error, "frame must be a JSON object", {}, {}};
  }
  return std::move(value);
}

std::optional<std::string_view>
string_field(const json& frame, std::string_view key)
{
  const auto it = frame.find(key);
  if (it == frame.end() || !it->is_string()) {
    return std::nullopt;
  }
  return std::string_view(it->get_ref<const std::string&>());
}

std::variant<core::CallRequest, FrameProblem>
parse_call_tool(const json& frame, const std::string& session_id)
{
  const auto request_id = string_field(frame, "request_id");
  if (!request_id || request_id->empty()) {
    return FrameProblem{core::Errc::validation_error,
                        "call_tool needs a non-empty string request_id",
                        "call_tool",
                        std::nullopt};
  }
  std::string rid(*request_id);
  const auto name = string_field(frame, "name");
  if (!name || name->empty()) {
    return FrameProblem{
        core::Errc::validation_error, "call_tool needs a non-empty string name", "call_tool", rid};
  }
  core::CallRequest request;
  if (const auto it = frame.find("arguments"); it != frame.end() && !it->is_null()) {
    if (!it->is_object()) {
      return FrameProblem{
          core::Errc::validation_error, "call_tool arguments must be an object", "call_tool", rid};
    }
    request.arguments = *it;
  }
  request.request_id = std::move(rid);
  request.tool = std::string(core::strip_tool_suffix(*name));
  request.session_id = session_id;
  return request;
}

std::string
problem_frame(const FrameProblem& problem)
{
  if (problem.op == "call_tool" && problem.request_id) {
    return frames::error_result(*problem.request_id, problem.code, problem.message);
  }
  return frames::op_error(
      problem.code, problem.message, json::object(), problem.request_id.value_or(""));
}

std::string
hello_frame(std::string_view token, std::string_view session_id, std::string_view client_name)
{
  json hello{{"op", "hello"}, {"token", token}};
  if (!session_id.empty()) {
    hello["session_id"] = session_id;
  }
  if (!client_name.empty()) {
    hello["client_name"] = client_name;
  }
  return dump(hello);
}

std::string
call_tool_frame(std::string_view request_id, std::string_view name, const json& arguments)
{
  return dump(json{
      {"op", "call_tool"}, {"request_id", request_id}, {"name", name}, {"arguments", arguments}});
}

std::string
cancel_tool_frame(std::string_view request_id)
{
  return dump(json{{"op", "cancel_tool"}, {"request_id", request_id}});
}

std::string
list_tools_frame(std::string_view request_id)
{
  return dump(json{{"op", "list_tools"}, {"request_id", request_id}});
}

std::string
health_frame(std::string_view request_id)
{
  json frame{{"op", "health"}};
  if (!request_id.empty()) {
    frame["request_id"] = request_id;
  }
  return dump(frame);
}

std::optional<HelloAck>
parse_hello_ack(std::string_view text)
{
  auto parsed = parse_frame(text);
  const auto* frame = std::get_if<json>(&parsed);
  if (frame == nullptr || string_field(*frame, "op") != "hello_ack") {
    return std::nullopt;
  }
  HelloAck ack;
  ack.ok = frame->value("ok", false) == true;
  ack.session_id = std::string(string_field(*frame, "session_id").value_or(""));
  ack.error = std::string(string_field(*frame, "error").value_or(ack.ok ? "" : "unknown"));
  if (ack.ok && ack.session_id.empty()) {
    return std::nullopt;
  }
  return ack;
}

std::string
hello_ack_ok(const std::string& session_id)
{
  return dump(json{{"op", "hello_ack"}, {"ok", true}, {"session_id", session_id}});
}

std::string
hello_ack_error(std::string_view error)
{
  return dump(json{{"op", "hello_ack"}, {"ok", false}, {"error", error}});
}

std::string
make_session_id()
{
  constexpr std::size_t kBytes = 24; // 192 bits -> 32 base64url characters
  std::ostringstream out;
  Poco::Base64Encoder encoder(out, Poco::BASE64_URL_ENCODING | Poco::BASE64_NO_PADDING);
  encoder.rdbuf()->setLineLength(0);
  encoder << core::random_bytes(kBytes);
  encoder.close();
  return out.str();
}

} // namespace exai::net::protocol
