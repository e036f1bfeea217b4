#pragma once

// MCP Streamable HTTP on the daemon's port, path /mcp (MCP 2025-11-25
// transport rules), using the call engine directly so that /mcp calls share
// the daemon's capacity with WebSocket clients.
//
//   POST /mcp    one JSON-RPC message. initialize issues an Mcp-Session-Id;
//                every later request must carry it (400 without, 404 for one
//                this install never issued or that DELETE ended). Session ids
//                are signed (McpSessionIds): a session that idled out of
//                memory, or was opened before a daemon restart, is re-adopted. Notifications and
//                responses: 202. Requests: a JSON reply, or for tools/call an SSE stream (when the
//                client accepts text/event-stream) carrying progress notifications before the
//                result, else one JSON reply when the call ends.
//   DELETE /mcp  ends the session (cancels its running calls): 204.
//   GET /mcp     with Last-Event-ID: resumes a tools/call SSE stream (the
//                events the client missed, then the rest; an isError result
//                when the call's events are gone). Without: 405 (no
//                server-initiated stream).
// Every request: Host and Origin checked by the server (403);
// `Authorization: Bearer <EXAI_WS_TOKEN>` when a token is set (401); an
// MCP-Protocol-Version header, when sent, must be a supported version (400).
//
// Threads: a tools/call holds no thread while it waits for capacity or the
// model. Its HTTP handler sends the response head and returns; the engine's
// events are rendered as JSON-RPC here and written by the connection's event
// loop. A client that leaves cancels its call.

#include "core/calls/call_engine.hpp"
#include "core/config/config.hpp"
#include "core/mcp/mcp_protocol.hpp"
#include "core/util/scheduler.hpp"
#include "net/http/http_router.hpp"
#include "net/mcp/mcp_handoff.hpp"
#include "net/mcp/mcp_http_call.hpp"
#include "net/mcp/mcp_session_ids.hpp"
#include "net/server/auth.hpp"

#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

namespace exai::net {

struct McpHttpOptions {
  // Sessions kept at once; the least recently used idle one is evicted
  // when a new client initializes beyond this.
  std::size_t max_sessions = 1000;
  // How long a call whose SSE stream broke waits for the client to resume
  // (GET with Last-Event-ID) before it is cancelled.
  std::chrono::milliseconds resume_grace{30000};
  // Finished SSE streams kept for resuming clients (also bounded by
  // EXAI_WS_RESULT_TTL_SECS), and the bytes of their events together (0: as
  // much as EXAI_WS_RESULT_MAX_BYTES); the oldest go first.
  std::size_t max_finished_streams = 1000;
  std::size_t max_finished_stream_bytes = 0;
};

// Create with std::make_shared (calls hold the service weakly).
class McpHttpService : public std::enable_shared_from_this<McpHttpService> {
public:
  using Clock = std::chrono::steady_clock;

  // `engine`, `config` and `tokens` must outlive the service. Sessions expire
  // config.session_timeout after their last request.
  McpHttpService(core::CallEngine& engine,
                 const core::DaemonConfig& config,
                 TokenStore& tokens,
                 McpHttpOptions options,
                 std::shared_ptr<spdlog::logger> log);
  McpHttpService(const McpHttpService&) = delete;
  McpHttpService& operator=(const McpHttpService&) = delete;
  ~McpHttpService();

  // Handlers for POST, DELETE and GET /mcp (run on HTTP threads).
  void handle_post(HttpExchange& exchange);
  void handle_delete(HttpExchange& exchange);
  void handle_get(HttpExchange& exchange);

  // Live sessions (after expiring idle ones).
  std::size_t session_count();

  // Tool calls answered or streaming now.
  std::size_t active_calls();

private:
  struct Session {
    std::string protocol_version;
    Clock::time_point last_used;
    std::map<std::string, std::shared_ptr<McpHttpCall>> calls; // by MCP id (dumped)
    std::optional<core::mcp::LogLevel> log_level;              // logging/setLevel
  };

  // Bearer check; false when a 401 was sent.
  bool admit(HttpExchange& exchange);
  void sweep(Clock::time_point now); // mutex_ held
  // Below max_sessions, evicting the least recently used session without
  // calls if need be; false when every session has calls. mutex_ held.
  bool make_room();
  std::string create_session(const std::string& protocol_version);
  // The session `id` names, re-adopted when it is validly signed but not in
  // memory (idled out, or opened before a restart) in place of the oldest
  // idle session at the limit; nullptr when unknown or when none is idle.
  Session* find_session(const std::string& id, Clock::time_point now); // mutex_ held
  std::shared_ptr<McpHttpCall> make_call(const std::string& session_id,
                                         const nlohmann::json& id,
                                         const std::string& tool,
                                         const nlohmann::json& arguments,
                                         const nlohmann::json& progress_token,
                                         bool sse,
                                         const core::mcp::EventId& events,
                                         std::function<void(std::string)> deliver = {});
  // logging/setLevel: the level the action carries becomes the session's.
  void remember_log_level(const std::string& session_id, const core::mcp::Action& action);
  // The answer to a list, prompt or completion request (from the engine's tools).
  std::string list_response(const core::mcp::Action& action);
  // notifications/cancelled: cancels the session's call `id` (if running).
  void cancel_call(const std::string& session_id, const nlohmann::json& id);
  class BatchReply;
  void handle_batch(HttpExchange& exchange,
                    const std::string& session_id,
                    const core::mcp::Batch& batch);
  // False when the session ended or the id is in progress.
  bool register_call(const std::string& session_id,
                     const std::shared_ptr<McpHttpCall>& call,
                     bool sse,
                     const std::string& stream_key);
  void submit(const std::shared_ptr<McpHttpCall>& call,
              const std::string& tool,
              const nlohmann::json& arguments);
  void start_call(HttpExchange& exchange,
                  const std::string& session_id,
                  const nlohmann::json& id,
                  const std::string& tool,
                  const nlohmann::json& arguments,
                  const nlohmann::json& progress_token);
  void
  end_call(const std::string& session_id, const std::string& key, const std::string& stream_key);

  core::CallEngine& engine_;
  const core::DaemonConfig& config_;
  TokenStore& tokens_;
  const McpHttpOptions options_;
  const std::shared_ptr<spdlog::logger> log_;
  const std::string id_prefix_;
  std::atomic<std::uint64_t> next_id_{0};

  const std::string instance_; // this process, in every SSE event id
  std::atomic<std::uint64_t> next_stream_{1};
  McpSessionIds ids_;
  McpHandoffStore handoff_;
  core::Scheduler scheduler_; // resume-grace timers of broken streams

  // An SSE tools/call stream a client may resume (by its event ids' key).
  struct Stream {
    std::shared_ptr<McpHttpCall> call;
    std::string session_id;
    std::optional<Clock::time_point> finished_at;
    std::size_t bytes = 0; // once finished: the events it keeps
  };

  std::mutex mutex_;
  std::map<std::string, Session> sessions_; // guarded by mutex_
  std::map<std::string, Stream> streams_;   // guarded by mutex_
};

// Registers POST, DELETE and GET /mcp on `router` (before the server starts).
// The handlers share ownership of the returned service; `engine`, `config`
// and `tokens` must outlive the router's server.
std::shared_ptr<McpHttpService> register_mcp_routes(HttpRouter& router,
                                                    core::CallEngine& engine,
                                                    const core::DaemonConfig& config,
                                                    TokenStore& tokens,
                                                    McpHttpOptions options = {});

} // namespace exai::net
