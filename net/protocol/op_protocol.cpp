#include "net/protocol/op_protocol.hpp"

#include <sys/random.h>

#include <array>
#include <cerrno>
#include <system_error>

namespace exai::net::protocol {

namespace {

using nlohmann::json;

std::string
dump(const json& value)
{
  // Replace invalid UTF-8 rather than throw: error messages may quote input.
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

json
error_object(core::Errc code, std::string_view message, json details)
{
  return json{{"code", core::protocol_code(code)},
              {"message", message},
              {"details", details.is_object() ? std::move(details) : json::object()}};
}

} // namespace

std::variant<json, ParseFailure>
parse_frame(std::string_view text)
{
  json value = json::parse(text.begin(), text.end(), nullptr, false);
  if (value.is_discarded()) {
    return ParseFailure::not_json;
  }
  if (!value.is_object()) {
    return ParseFailure::not_object;
  }
  return value;
}

std::string
strip_tool_suffix(std::string_view name)
{
  for (std::string_view suffix : {"_EXAI-WS", "-EXAI-WS", "_EXAI_WS", "-EXAI_WS"}) {
    if (name.size() > suffix.size() && name.substr(name.size() - suffix.size()) == suffix) {
      return std::string(name.substr(0, name.size() - suffix.size()));
    }
  }
  return std::string(name);
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

std::variant<core::CallRequest, CallToolProblem>
parse_call_tool(const json& frame, const std::string& session_id)
{
  const auto request_id = string_field(frame, "request_id");
  if (!request_id || request_id->empty()) {
    return CallToolProblem{std::nullopt, "call_tool needs a non-empty string request_id"};
  }
  std::string rid(*request_id);
  const auto name = string_field(frame, "name");
  if (!name || name->empty()) {
    return CallToolProblem{rid, "call_tool needs a non-empty string name"};
  }
  core::CallRequest request;
  if (const auto it = frame.find("arguments"); it != frame.end() && !it->is_null()) {
    if (!it->is_object()) {
      return CallToolProblem{rid, "call_tool arguments must be an object"};
    }
    request.arguments = *it;
  }
  request.request_id = std::move(rid);
  request.tool = strip_tool_suffix(*name);
  request.session_id = session_id;
  return request;
}

std::string
error_frame(core::Errc code,
            std::string_view message,
            json details,
            const std::optional<std::string>& request_id)
{
  json frame{{"op", "error"}, {"error", error_object(code, message, std::move(details))}};
  if (request_id) {
    frame["request_id"] = *request_id;
  }
  return dump(frame);
}

std::string
call_error_frame(const std::string& request_id,
                 core::Errc code,
                 std::string_view message,
                 json details)
{
  return dump(json{{"op", "call_tool_res"},
                   {"request_id", request_id},
                   {"error", error_object(code, message, std::move(details))}});
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
  std::array<unsigned char, kBytes> raw{};
  std::size_t filled = 0;
  while (filled < raw.size()) {
    const ssize_t n = ::getrandom(raw.data() + filled, raw.size() - filled, 0);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      throw std::system_error(errno, std::generic_category(), "getrandom");
    }
    filled += static_cast<std::size_t>(n);
  }
  static constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  out.reserve(kBytes / 3 * 4);
  for (std::size_t i = 0; i < kBytes; i += 3) {
    const unsigned v = (unsigned{raw[i]} << 16U) | (unsigned{raw[i + 1]} << 8U) | raw[i + 2];
    out += kAlphabet[(v >> 18U) & 63U];
    out += kAlphabet[(v >> 12U) & 63U];
    out += kAlphabet[(v >> 6U) & 63U];
    out += kAlphabet[v & 63U];
  }
  return out;
}

} // namespace exai::net::protocol
