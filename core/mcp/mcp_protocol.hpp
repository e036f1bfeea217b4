#pragma once

// MCP (Model Context Protocol) over JSON-RPC 2.0, free of any transport: the
// parsing, validation and method routing shared by `exai mcp` (stdio) and the
// daemon's Streamable HTTP endpoint `/mcp`, plus the translation of the
// daemon's call frames (SPEC §2) into MCP results and progress notifications.
//
// Choices (documented in man/exai-mcp.1):
//   - protocol versions 2024-11-05, 2025-03-26, 2025-06-18 and 2025-11-25;
//     the client's is echoed when supported, else the newest is offered;
//   - JSON-RPC batches only in 2024-11-05 and 2025-03-26 sessions (removed in
//     2025-06-18), else -32600;
//   - an unknown tool is the JSON-RPC error -32602; every other daemon error
//     (capacity, timeout, provider, validation) is a tool result with
//     isError:true and a readable message, so the model can see it.

#include "core/calls/call_result.hpp"

#include <nlohmann/json.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace exai::core::mcp {

// JSON-RPC 2.0 error codes.
inline constexpr int kParseError = -32700;
inline constexpr int kInvalidRequest = -32600;
inline constexpr int kMethodNotFound = -32601;
inline constexpr int kInvalidParams = -32602;
inline constexpr int kInternalError = -32603;

inline constexpr std::string_view kLatestProtocolVersion = "2025-11-25";

// True for the protocol versions exai speaks (2024-11-05 … 2025-11-25).
bool supported_protocol_version(std::string_view version) noexcept;

// "2024-11-05, 2025-03-26, …" for error messages.
std::string supported_protocol_versions_text();

// MCP logging levels (RFC 5424 severities, least severe first).
enum class LogLevel { debug, info, notice, warning, error, critical, alert, emergency };
inline constexpr std::array<std::string_view, 8> kLogLevelNames = {
    "debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"};
std::optional<LogLevel> log_level_from(std::string_view name) noexcept;

// {"jsonrpc":"2.0","method":"notifications/message","params":{"level","logger","data"}}.
std::string log_notification(LogLevel level, std::string_view logger, const nlohmann::json& data);

// The log line of a call's end for a client that asked for logging at `min`:
// info when it succeeded (`error_code` empty), warning naming the code and
// message when it failed; nullopt when that is below `min`.
std::optional<std::string> call_outcome_notification(LogLevel min,
                                                     std::string_view request_id,
                                                     std::string_view tool,
                                                     std::string_view error_code,
                                                     std::string_view error_message);

// The version initialize answers with: `requested` when supported, else the newest.
std::string negotiate_protocol_version(std::string_view requested);

// A JSON-RPC error to send back for one request.
struct RpcError {
  int code = kInternalError;
  std::string message;
  nlohmann::json data; // null: no "data" member
};

// One message from the client, classified.
struct Message {
  enum class Kind { request, notification, response, invalid };
  Kind kind = Kind::invalid;
  nlohmann::json id;     // request and response: the id (string or integer)
  std::string method;    // request and notification
  nlohmann::json params; // request and notification: object, or null when absent
  RpcError error;        // invalid: what to answer (with `id`, null when unknown)
};

// Parses one message text (a line on stdio, a POST body on HTTP). Never
// throws: bad JSON gives kind invalid with -32700; a batch (JSON array), a
// non-object, a wrong "jsonrpc", a bad id or a bad method give -32600.
Message parse_message(std::string_view text);

// As parse_message, for an already-parsed value.
Message classify(const nlohmann::json& value);

// True for the versions whose sessions may send JSON-RPC batches (2024-11-05
// and 2025-03-26; 2025-06-18 removed them).
bool batches_allowed(std::string_view protocol_version) noexcept;

// A JSON-RPC batch (a JSON array of at most kMaxBatch items).
inline constexpr std::size_t kMaxBatch = 100;
struct Batch {
  std::vector<Message> messages;  // each classified; empty when refused
  std::optional<Message> refused; // bad JSON, empty or too large: answered alone
};

// The batch `text` holds; nullopt when it is not a JSON array.
std::optional<Batch> parse_batch(std::string_view text);

// "[r1,r2,...]": the responses of a batch as one JSON array.
std::string batch_response(const std::vector<std::string>& responses);

// {"jsonrpc":"2.0","id":id,"result":result} as compact text.
std::string result_response(const nlohmann::json& id, const nlohmann::json& result);

// {"jsonrpc":"2.0","id":id,"error":{"code","message"[,"data"]}} as compact text.
std::string error_response(const nlohmann::json& id, const RpcError& error);

// {"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken",
// "progress"[,"message"]}}; no message when empty.
std::string progress_notification(const nlohmann::json& token,
                                  std::uint64_t progress,
                                  std::string_view message);

// A validated tools/call request.
struct ToolCall {
  std::string name;
  nlohmann::json arguments = nlohmann::json::object();
  nlohmann::json progress_token; // null: the client asked for no progress
};

// What a transport does with one client message (see route()).
struct Action {
  enum class Type {
    none,         // nothing to send (notifications, client responses)
    respond,      // send `response` now
    list_tools,   // answer `id` with tools_list_result(<daemon tools>)
    call_tool,    // start `call` and answer `id` when it ends
    cancel,       // cancel the call of request `cancel_id`; never answer it
    list_prompts, // answer `id` with prompts_list_result(<daemon tools>)
    get_prompt,   // answer `id` with prompt_get_response(id, params, <daemon tools>)
    complete,     // answer `id` with completion_response(id, params, <daemon tools>)
  };
  Type type = Type::none;
  nlohmann::json id;
  std::string response;
  ToolCall call;
  nlohmann::json cancel_id;
  std::string protocol_version;      // set when `response` answers a valid initialize
  nlohmann::json params;             // get_prompt: the request's params
  std::optional<LogLevel> log_level; // set when `response` answers logging/setLevel
};

// Routes one classified message: initialize, ping, tools/list, tools/call,
// notifications/cancelled and notifications/initialized are known; any other
// request is -32601 at once, other notifications are ignored. Invalid
// messages become their error response (none for an invalid notification).
Action route(const Message& message, std::string_view server_version);

// The tools/list result for the daemon's list_tools `tools` array: name,
// description and inputSchema (an object schema; {"type":"object"} when the
// daemon gives none).
nlohmann::json tools_list_result(const nlohmann::json& daemon_tools);

// The JSON-RPC reply to a tools/call for the daemon's call_tool_res frame:
// outputs become `content` text items; TOOL_NOT_FOUND becomes -32602; any
// other daemon error becomes an isError:true result with a readable text.
std::string tool_call_response(const nlohmann::json& id, const nlohmann::json& call_tool_res);

// The same, for the engine's typed result (the daemon's own /mcp).
std::string tool_call_response(const nlohmann::json& id, const ToolResult& result);

// An isError:true tools/call reply saying `text` (e.g. the daemon is gone).
std::string tool_error_response(const nlohmann::json& id, std::string_view text);

// One running tools/call: turns the daemon's frames for it into MCP messages.
// Not thread-safe; the transport serialises access.
class CallTranslator {
public:
  using Clock = std::chrono::steady_clock;

  // Heartbeat period: a call whose client asked for progress hears at least
  // this often, whatever the daemon's EXAI_WS_PROGRESS_INTERVAL_SECS is.
  static constexpr std::chrono::seconds kHeartbeat{4};

  CallTranslator(nlohmann::json id, nlohmann::json progress_token, Clock::time_point now);

  // The MCP messages for one daemon frame of this call, in order: progress
  // notifications (progress and call_tool_ack frames, when a token was given)
  // and, for call_tool_res, the final response (then done() is true).
  std::vector<std::string> on_frame(const nlohmann::json& frame, Clock::time_point now);

  // The same from the engine's typed events (the daemon's own /mcp): a
  // progress notification (when a token was given), or the final response.
  std::optional<std::string> on_progress(std::string_view note, Clock::time_point now);
  std::optional<std::string> on_ack(Clock::time_point now);
  std::string on_result(const ToolResult& result);

  // A progress notification when the client asked for progress and nothing
  // was sent for kHeartbeat; else nullopt.
  std::optional<std::string> heartbeat(Clock::time_point now);

  // The final response was produced.
  bool done() const noexcept { return done_; }

  const nlohmann::json& id() const noexcept { return id_; }

private:
  std::string progress(std::string_view message, Clock::time_point now);

  nlohmann::json id_;
  nlohmann::json token_;
  std::uint64_t progress_ = 0;
  std::string last_note_;
  Clock::time_point last_sent_;
  bool done_ = false;
};

} // namespace exai::core::mcp
