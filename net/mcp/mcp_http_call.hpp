#pragma once

// One tools/call on /mcp: renders the engine's events as JSON-RPC and writes
// them to the response stream the connection's event loop sends (SSE or one
// JSON body). Held by its session until its result is out (the engine holds it
// only weakly).
//
// Resumable SSE: every event carries an id (core/mcp/mcp_event_id), the
// stream opens with a priming event and a `retry` field, and the call keeps
// its last events and its final response. A client whose stream broke comes
// back with GET /mcp and Last-Event-ID (resume()); the call does not end with
// the stream but waits `resume_grace` for that, then is cancelled, so a
// client that really left still frees its capacity.

#include "core/calls/call_engine.hpp"
#include "core/mcp/mcp_event_id.hpp"
#include "core/mcp/mcp_protocol.hpp"
#include "core/util/scheduler.hpp"
#include "net/http/response_stream.hpp"
#include "net/mcp/mcp_handoff.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

namespace exai::net {

class McpHttpCall final : public core::CallSink, public std::enable_shared_from_this<McpHttpCall> {
public:
  using Clock = std::chrono::steady_clock;

  // Events kept for a resuming client while the call runs (progress beyond
  // this is dropped oldest first; the final response is always kept).
  static constexpr std::size_t kReplayEvents = 64;
  // The `retry` the priming event asks clients to wait before resuming.
  static constexpr std::chrono::milliseconds kRetry{1000};

  struct Setup {
    core::CallEngine* engine = nullptr;
    core::Scheduler* scheduler = nullptr;
    std::shared_ptr<spdlog::logger> log;
    std::string session_id; // the engine's session ("mcp:<id>")
    std::string request_id; // the engine's request id
    nlohmann::json id;      // the JSON-RPC id
    nlohmann::json progress_token;
    bool sse = false;
    std::string tool;
    nlohmann::json arguments; // kept for a handoff to the next daemon
    std::optional<core::mcp::LogLevel> log_level;
    core::mcp::EventId events; // instance and stream; seq counts from here
    std::chrono::milliseconds resume_grace{30000};
    std::function<void()> on_finished; // once, after the final response
    // Where a call refused by a graceful stop (SHUTTING_DOWN) is handed to
    // the next daemon instead of answered; null or disabled: answered.
    const McpHandoffStore* handoff = nullptr;
    // A call of a batch: its JSON-RPC response goes here instead of to a
    // response stream of its own.
    std::function<void(std::string)> deliver;
  };

  explicit McpHttpCall(Setup setup);

  // The first response stream (the POST's); SSE streams start with the
  // priming event. Listens to the stream's closing and ticks.
  void attach(const std::shared_ptr<ResponseStream>& stream);

  // A client resumed after event `after`: replays what it missed, then
  // streams the rest (or ends at once when the call is over).
  void resume(const std::shared_ptr<ResponseStream>& stream, std::uint64_t after);

  const std::string& request_id() const noexcept { return setup_.request_id; }
  const nlohmann::json& id() const noexcept { return setup_.id; }
  const std::string& session_id() const noexcept { return setup_.session_id; }

  // Drops a pending resume-grace timer (the service is going away).
  void stop_timer();

  // notifications/cancelled or DELETE: cancel, and send no response.
  void cancel_from_client();

  void on_progress(std::string_view request_id,
                   std::string_view tool,
                   std::string_view note) noexcept override;
  void on_ack(std::string_view request_id,
              std::string_view tool,
              std::chrono::milliseconds timeout) noexcept override;
  bool on_result(std::string_view request_id, const core::ToolResult& result) noexcept override;

  // `stream` closed / ticked; ignored unless it is the current stream (a
  // stream replaced by a resume may still report once, late).
  void on_stream_closed(const ResponseStream* stream) noexcept;
  void on_stream_tick(const ResponseStream* stream, SteadyClock::time_point now) noexcept;

  // Bytes of the events kept for a resuming client (the recent ones and the
  // final response).
  std::size_t kept_bytes();

  // An SSE body answering `id` with an isError result saying `text`: what a
  // resuming client gets when its call's events are gone.
  static std::string lost_stream_body(const core::mcp::EventId& last, std::string_view text);

private:
  class Watch;
  void watch(const std::shared_ptr<ResponseStream>& stream); // mutex_ held

  bool emit(const std::string& message);            // mutex_ held: numbered, kept, written
  bool hand_off(const core::ToolResult& result);    // mutex_ held: true when handed over
  void log_outcome(const core::ToolResult& result); // mutex_ held
  void orphaned();                                  // resume_grace passed

  const Setup setup_;
  std::mutex mutex_;
  core::mcp::CallTranslator translator_;   // guarded by mutex_
  std::shared_ptr<ResponseStream> stream_; // guarded by mutex_
  std::shared_ptr<Watch> watch_;           // guarded by mutex_: the listener of stream_
  std::deque<std::pair<std::uint64_t, std::string>> kept_;     // guarded: recent events
  std::optional<std::pair<std::uint64_t, std::string>> final_; // guarded
  std::uint64_t seq_ = 0;                                      // guarded by mutex_
  Clock::time_point last_write_ = Clock::now();                // guarded by mutex_
  core::Scheduler::Handle orphan_timer_;                       // guarded by mutex_
  bool done_ = false;                                          // guarded by mutex_
  bool cancelled_ = false;                                     // guarded by mutex_
};

} // namespace exai::net
