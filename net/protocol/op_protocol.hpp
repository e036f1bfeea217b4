#pragma once

// The op protocol of SPEC §2 as text: parsing and validation of what a
// client sends, and the frames that concern no call (hello_ack, op errors).
// The per-call frames (progress, ack, result) are in op_frames.hpp. Used by
// the server and by exai's own clients (the stdio bridge, stress, health).
// Pure functions, no I/O.

#include "core/calls/call_engine.hpp"
#include "core/error.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace exai::net::protocol {

// WebSocket close codes used by the daemon (RFC 6455 ones and SPEC §2's).
inline constexpr std::uint16_t kCloseNormal = 1000;
inline constexpr std::uint16_t kCloseGoingAway = 1001;
inline constexpr std::uint16_t kCloseProtocolError = 1002;
inline constexpr std::uint16_t kClosePolicy = 1008;
inline constexpr std::uint16_t kCloseTooBig = 1009;
inline constexpr std::uint16_t kCloseInvalidHello = 4000;
inline constexpr std::uint16_t kCloseMissingHello = 4001;
inline constexpr std::uint16_t kCloseHelloTimeout = 4002;
inline constexpr std::uint16_t kCloseUnauthorized = 4003;

// A frame that could not be used, with what could still be read from it, so
// the answer carries the frame's op and request_id (a client waiting on that
// request_id must hear about it).
struct FrameProblem {
  core::Errc code = core::Errc::validation_error;
  std::string message;                   // names the rule broken
  std::optional<std::string> op;         // when it could be read
  std::optional<std::string> request_id; // when it could be read
};

// Parses one frame's payload into a JSON object (nesting capped at
// core::kMaxJsonDepth). Never throws: malformed input is a value.
std::variant<nlohmann::json, FrameProblem> parse_frame(std::string_view text);

// The string value of `frame[key]`, or nullopt when absent or not a string.
std::optional<std::string_view> string_field(const nlohmann::json& frame, std::string_view key);

// Validates a call_tool frame: request_id a non-empty string, name a
// non-empty string, arguments an object (absent or null = {}).
std::variant<core::CallRequest, FrameProblem> parse_call_tool(const nlohmann::json& frame,
                                                              const std::string& session_id);

// The answer to an unusable frame: a call_tool_res error when it was a
// call_tool with a request_id, else an op "error" (with the request_id when
// known).
std::string problem_frame(const FrameProblem& problem);

// {"op":"hello","token":T[,"session_id":S][,"client_name":N]}.
std::string hello_frame(std::string_view token,
                        std::string_view session_id = {},
                        std::string_view client_name = {});

// What a client sends besides hello (request_id echoed in the answers).
std::string call_tool_frame(std::string_view request_id,
                            std::string_view name,
                            const nlohmann::json& arguments);
std::string cancel_tool_frame(std::string_view request_id);
std::string list_tools_frame(std::string_view request_id);
std::string health_frame(std::string_view request_id = {});

// A hello_ack as a client reads it; nullopt when `text` is not one.
struct HelloAck {
  bool ok = false;
  std::string session_id; // ok
  std::string error;      // not ok: invalid_hello, missing_hello, unauthorized
};
std::optional<HelloAck> parse_hello_ack(std::string_view text);

// {"op":"hello_ack","ok":true,"session_id":S}.
std::string hello_ack_ok(const std::string& session_id);

// {"op":"hello_ack","ok":false,"error":E}.
std::string hello_ack_error(std::string_view error);

// A fresh session id: 192 random bits from the kernel CSPRNG, base64url
// without padding (32 characters).
std::string make_session_id();

} // namespace exai::net::protocol
