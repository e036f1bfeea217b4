#pragma once

// One WebSocket connection after the upgrade. Its socket is non-blocking and
// owned by its event loop; frames are parsed by the project's incremental RFC
// 6455 codec (core/ws/frame_codec), the only place frames are parsed or built:
// one recv per wake-up drains whatever arrived, every complete frame in it is
// handled at once, and a partial frame waits in this connection's own small
// buffer — so one client sending half a frame stalls nobody.
//
// Phases: awaiting hello (a small input budget, EXAI_WS_PENDING_MAX_BYTES,
// and the hello timeout) -> open -> closing (our close frame queued; the
// peer's close, or the linger time, ends it).

#include "core/calls/call_sink.hpp"
#include "core/util/interface.hpp"
#include "core/ws/frame_codec.hpp"
#include "net/server/connection.hpp"

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace exai::net {

class WsConnection;

// What a WebSocket delivers. Implemented by the op protocol (OpDispatcher).
class MessageHandler : public core::Interface {
public:
  // One complete text or binary message (valid UTF-8 when text). Runs on the
  // connection's loop thread; must not block: the loop's other connections
  // wait meanwhile.
  virtual void on_message(const std::shared_ptr<WsConnection>& connection,
                          std::string_view payload) = 0;

  // The connection is gone; `unsent_results` are the request ids whose
  // results were queued but never fully sent. Loop thread; once.
  virtual void on_closed(const std::shared_ptr<WsConnection>& connection,
                         std::vector<std::string> unsent_results) noexcept = 0;

  // Periodic housekeeping, on the first event loop.
  virtual void on_tick(SteadyClock::time_point /*now*/) noexcept {}
};

// Set by HubOptions::from() (the configuration owns the defaults).
struct WsOptions {
  std::size_t max_message_bytes = 0; // EXAI_WS_MAX_BYTES
  std::size_t pending_max_bytes = 0; // before hello (EXAI_WS_PENDING_MAX_BYTES)
  Millis hello_timeout{0};
  Millis ping_interval{0};
  Millis ping_timeout{0};
  Millis idle_timeout{0};    // SESSION_TIMEOUT_SECS
  Millis close_linger{2000}; // not a setting: how long a close handshake may take
};

class WsConnection final : public Connection, public core::CallSink {
public:
  WsConnection(EventLoop& loop,
               ConnectionObserver& observer,
               Accepted socket,
               OutputLimits output,
               const WsOptions& options,
               MessageHandler& handler,
               SteadyClock::time_point now);

  // Queues one text frame. Any thread; false when the connection takes no
  // more output. `tag` marks a call's result (its request id).
  bool send_text(std::string_view payload, std::string tag = {}) noexcept;

  // Starts the close handshake: queues a close frame after everything queued
  // and stops delivering messages. Any thread. Idempotent.
  void close(std::uint16_t code, std::string_view reason) noexcept;

  // Hello done: takes one of the MAX_CONNECTIONS places (false, and nothing
  // changed, when none is left), stops the hello timer, lifts the pre-hello
  // input budget and binds the session. Loop thread.
  // `owner` names who authenticated (the token generation).
  bool greet(std::string session_id, std::string owner);

  bool greeted() const noexcept { return phase_.load() == Phase::open; }
  bool closing() const noexcept { return phase_.load() == Phase::closing; }
  // The session bound by hello; empty before. Loop thread.
  const std::string& session_id() const noexcept { return session_id_; }
  const std::string& owner() const noexcept { return owner_; }

  // core::CallSink (any thread).
  void on_progress(std::string_view request_id,
                   std::string_view tool,
                   std::string_view note) noexcept override;
  void on_ack(std::string_view request_id,
              std::string_view tool,
              std::chrono::milliseconds timeout) noexcept override;
  bool on_result(std::string_view request_id, const core::ToolResult& result) noexcept override;

  void on_tick(SteadyClock::time_point now) noexcept override;

private:
  enum class Phase { awaiting_hello, open, closing };
  class Events;

  void on_readable() override;
  void on_drained() noexcept override;
  void on_dropped(std::vector<std::string> unsent_tags) noexcept override;
  void handle(const core::ws::Event& event);
  void close_now(std::uint16_t code, std::string_view reason) noexcept;

  const WsOptions& options_;
  MessageHandler& handler_;
  std::atomic<Phase> phase_{Phase::awaiting_hello};

  // Loop thread only.
  core::ws::FrameDecoder decoder_;
  std::string tail_; // a partial frame carried to the next read
  std::string session_id_;
  std::string owner_;
  SteadyClock::time_point opened_at_;
  SteadyClock::time_point last_rx_;        // any frame from the peer
  SteadyClock::time_point last_message_;   // a data message from the peer
  SteadyClock::time_point last_ping_;      // our last ping
  SteadyClock::time_point ping_pending_{}; // our unanswered ping; {} = none
  SteadyClock::time_point closing_since_{};
  bool peer_closed_ = false; // the peer's close frame arrived
};

} // namespace exai::net
