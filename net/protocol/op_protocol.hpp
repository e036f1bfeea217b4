#pragma once

// The op protocol's frames (SPEC §2): parsing and validation of what clients
// send, and builders for what the server answers. Pure functions, no I/O.

#include "core/calls/call_engine.hpp"
#include "core/error.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace exai::net::protocol {

// WebSocket close codes used by the daemon.
inline constexpr std::uint16_t kCloseNormal = 1000;
inline constexpr std::uint16_t kCloseGoingAway = 1001;
inline constexpr std::uint16_t kCloseProtocolError = 1002;
inline constexpr std::uint16_t kClosePolicy = 1008;
inline constexpr std::uint16_t kCloseTooBig = 1009;
inline constexpr std::uint16_t kCloseInvalidHello = 4000;
inline constexpr std::uint16_t kCloseMissingHello = 4001;
inline constexpr std::uint16_t kCloseHelloTimeout = 4002;
inline constexpr std::uint16_t kCloseUnauthorized = 4003;

enum class ParseFailure { not_json, not_object };

// Parses one frame's payload. Never throws: malformed input is a value.
std::variant<nlohmann::json, ParseFailure> parse_frame(std::string_view text);

// `name` without one trailing `_EXAI-WS`, `-EXAI-WS`, `_EXAI_WS` or `-EXAI_WS`.
std::string strip_tool_suffix(std::string_view name);

// The string value of `frame[key]`, or nullopt when absent or not a string.
std::optional<std::string_view> string_field(const nlohmann::json& frame, std::string_view key);

// Why a call_tool frame was refused. `request_id` is set when the frame had a
// usable one (then the answer is a call_tool_res, else an op:error).
struct CallToolProblem {
  std::optional<std::string> request_id;
  std::string message;
};

// Validates a call_tool frame: request_id a non-empty string, name a
// non-empty string, arguments an object (absent or null = {}).
std::variant<core::CallRequest, CallToolProblem> parse_call_tool(const nlohmann::json& frame,
                                                                 const std::string& session_id);

// {"op":"error","error":{code,message,details}} (+ request_id when given).
std::string error_frame(core::Errc code,
                        std::string_view message,
                        nlohmann::json details = nlohmann::json::object(),
                        const std::optional<std::string>& request_id = std::nullopt);

// {"op":"call_tool_res","request_id":R,"error":{code,message,details}}.
std::string call_error_frame(const std::string& request_id,
                             core::Errc code,
                             std::string_view message,
                             nlohmann::json details = nlohmann::json::object());

// {"op":"hello_ack","ok":true,"session_id":S}.
std::string hello_ack_ok(const std::string& session_id);

// {"op":"hello_ack","ok":false,"error":E}.
std::string hello_ack_error(std::string_view error);

// A fresh session id: 192 random bits from the kernel CSPRNG (getrandom),
// base64url without padding (32 characters). Throws std::system_error only if
// the kernel cannot supply randomness.
std::string make_session_id();

} // namespace exai::net::protocol
