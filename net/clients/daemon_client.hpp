#pragma once

// DaemonClient: one WebSocket connection from a client process (`exai mcp`)
// to `exai serve`, kept up for the client's whole life. It says hello (with
// the token and, after the first connection, the session id it was given, so
// the daemon resumes the session), hands every later frame to a callback,
// answers the daemon's pings, and reconnects with exponential backoff when
// the daemon is down or goes away.
//
// Threads: one connection thread (connect, hello, read loop) owned by the
// client. Callbacks run on that thread; send() may be called from any thread.

#include "net/clients/daemon_session.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace Poco::Net {
class WebSocket;
class HTTPClientSession;
} // namespace Poco::Net

namespace exai::net {

struct DaemonClientCallbacks {
  // After a successful hello_ack. `resumed` is true when the daemon accepted
  // the session id of an earlier connection (same daemon, state kept); false
  // on the first connection and after a daemon restart.
  std::function<void(const std::string& session_id, bool resumed)> on_connected;
  // The connection was lost (only after on_connected).
  std::function<void()> on_disconnected;
  // One frame from the daemon after the handshake (parsed JSON object).
  std::function<void(const nlohmann::json& frame)> on_frame;
  // The daemon refused this client definitely (wrong or missing token); the
  // client keeps retrying in the background. Optional.
  std::function<void(const std::string& why)> on_refused = {};
};

class DaemonClient {
public:
  // Backoff between connection attempts: doubles from kMinBackoff to kMaxBackoff.
  static constexpr std::chrono::milliseconds kMinBackoff{50};
  static constexpr std::chrono::milliseconds kMaxBackoff{2000};

  // `max_bytes` bounds the frames accepted from the daemon (EXAI_WS_MAX_BYTES).
  DaemonClient(DaemonAddress address,
               std::size_t max_bytes,
               DaemonClientCallbacks callbacks,
               std::shared_ptr<spdlog::logger> log);
  DaemonClient(const DaemonClient&) = delete;
  DaemonClient& operator=(const DaemonClient&) = delete;
  ~DaemonClient();

  // Starts the connection thread (connects at once, then keeps connected).
  void start();

  // Closes the connection and joins the thread. Idempotent; no callback runs
  // after it returns.
  void stop() noexcept;

  // Sends one text frame. False when not connected (or the send failed; the
  // connection thread then reconnects). Thread-safe.
  bool send(const std::string& frame) noexcept;

  bool connected() const noexcept { return connected_.load(); }

  // Why the last connection attempt failed ("" when connected or never tried).
  std::string last_error() const;

  const DaemonAddress& address() const noexcept { return address_; }

private:
  void run();
  // Connects and says hello; the socket when hello_ack ok, else null (and
  // last_error_ says why; `refused` tells a definite refusal from a network
  // failure).
  std::shared_ptr<Poco::Net::WebSocket> connect_once(bool& refused);
  void read_loop(const std::shared_ptr<Poco::Net::WebSocket>& socket);
  void set_error(std::string error);
  bool sleep_for(std::chrono::milliseconds delay); // false when stopping

  const DaemonAddress address_;
  const std::size_t max_bytes_;
  const DaemonClientCallbacks callbacks_;
  const std::shared_ptr<spdlog::logger> log_;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::shared_ptr<Poco::Net::WebSocket> socket_; // guarded by mutex_
  std::string session_id_;                       // guarded by mutex_
  std::string last_error_;                       // guarded by mutex_
  bool stopping_ = false;                        // guarded by mutex_
  std::mutex send_mutex_;                        // serialises frame writes
  std::atomic<bool> connected_{false};
  std::thread thread_;
};

} // namespace exai::net
