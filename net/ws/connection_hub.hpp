#pragma once

// ConnectionHub: holds every upgraded WebSocket without a thread per
// connection. A few event loops (EXAI_WORKER_THREADS) each own a share of the
// connections: a loop waits on its own epoll set, reads a ready frame into the
// loop's one receive buffer, passes complete messages to the MessageHandler and
// writes the replies, all on the same thread, so a request costs no thread
// hand-off. Each loop also runs its connections' timers: hello timeout,
// keep-alive pings, idle expiry, close linger.

#include "core/config/config.hpp"
#include "net/ws/ws_connection.hpp"

#include <Poco/Net/WebSocket.h>
#include <spdlog/spdlog.h>

#include <sys/epoll.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

namespace exai::net {

using Millis = std::chrono::milliseconds;

struct HubOptions {
  std::size_t max_connections = 1000;
  std::size_t max_connections_per_ip = 100;
  std::size_t max_frame_bytes = 33554432;
  Millis hello_timeout{15000};
  Millis ping_interval{30000};
  Millis ping_timeout{10000};
  Millis idle_timeout{3600000};
  Millis io_timeout{10000};  // send timeout; also the limit for reading one partial frame
  Millis close_linger{2000}; // how long a closing connection waits for the peer's close
  std::size_t workers = 4;
  std::chrono::microseconds busy_poll{0}; // see ConnectionHub::wait_events

  static HubOptions from(const core::DaemonConfig& config);
};

// The busy-poll rule (EXAI_WS_BUSY_POLL_US): the next wait polls first only
// when this one brought events after an idle gap within the budget, so one
// long gap turns polling off until the peers are quick again.
constexpr bool
poll_next_wait(int events, std::chrono::nanoseconds idle_gap, std::chrono::microseconds budget)
{
  return events > 0 && budget.count() > 0 && idle_gap <= budget;
}

// What the hub delivers. Implemented by the op protocol (OpDispatcher).
class MessageHandler {
public:
  MessageHandler() = default;
  MessageHandler(const MessageHandler&) = delete;
  MessageHandler& operator=(const MessageHandler&) = delete;
  MessageHandler(MessageHandler&&) = delete;
  MessageHandler& operator=(MessageHandler&&) = delete;
  virtual ~MessageHandler() = default;

  // One complete text or binary message. Called on the event loop that owns
  // the connection, so never twice at the same time for one connection. Must
  // not block for long: the loop's other connections wait meanwhile.
  virtual void on_message(const std::shared_ptr<WsConnection>& connection,
                          std::string_view payload) = 0;

  // The connection is gone. Called exactly once per connection, on any thread.
  virtual void on_closed(const std::shared_ptr<WsConnection>& connection) noexcept = 0;

  // Periodic housekeeping, on the first event loop.
  virtual void on_tick(SteadyClock::time_point /*now*/) noexcept {}
};

class ConnectionHub {
public:
  ConnectionHub(HubOptions options, MessageHandler& handler, std::shared_ptr<spdlog::logger> log);
  ConnectionHub(const ConnectionHub&) = delete;
  ConnectionHub& operator=(const ConnectionHub&) = delete;
  ConnectionHub(ConnectionHub&&) = delete;
  ConnectionHub& operator=(ConnectionHub&&) = delete;
  // Stops (close 1001) if stop() was not called.
  ~ConnectionHub();

  // Starts the event loops. Throws std::system_error when epoll cannot be
  // created.
  void start();

  // Takes over an upgraded socket (any thread). Beyond MAX_CONNECTIONS or
  // MAX_CONNECTIONS_PER_IP, or after stop(), the socket is closed with 1008
  // (1001 when stopping) and false is returned. Never throws.
  bool admit(Poco::Net::WebSocket socket, const std::string& peer_ip) noexcept;

  // Closes every connection with `code`/`reason`, waits up to `linger` for
  // the close handshakes, drops the rest and joins all threads. Idempotent.
  void stop(std::uint16_t code, std::string_view reason, Millis linger) noexcept;

  // Admitted connections currently open (not counting refused ones).
  std::size_t connection_count() const;

  // Threads the hub runs (one per event loop), for diagnostics.
  std::size_t thread_count() const noexcept { return loop_count(); }

  // Removes `connection` at once: no more reads or writes, socket shut down,
  // MessageHandler::on_closed called. Idempotent, any thread.
  void drop(const std::shared_ptr<WsConnection>& connection, std::string_view why) noexcept;

  // Asks the loop that owns `connection` to write its queued frames.
  void post_flush(std::shared_ptr<WsConnection> connection) noexcept;

private:
  // One event loop: its thread, epoll set and the connections it owns.
  struct Loop {
    int epoll_fd = -1;
    int wake_fd = -1; // an eventfd: flushes were posted, or the hub stops
    std::thread thread;
    std::mutex mutex;
    std::unordered_map<std::uint64_t, std::shared_ptr<WsConnection>> connections; // guarded
    std::vector<std::shared_ptr<WsConnection>> flushes; // guarded: posted by other threads
  };

  std::size_t loop_count() const noexcept { return std::max<std::size_t>(options_.workers, 1); }
  void run_loop(Loop& loop) noexcept;
  int wait_events(Loop& loop,
                  std::span<epoll_event> events,
                  SteadyClock::time_point next_tick,
                  bool poll_first) noexcept;
  void run_flushes(Loop& loop) noexcept;
  std::shared_ptr<WsConnection> find(Loop& loop, std::uint64_t id);
  void read_one(const std::shared_ptr<WsConnection>& connection, Poco::Buffer<char>& buffer);
  void deliver(const std::shared_ptr<WsConnection>& connection,
               int opcode,
               bool fin,
               std::string_view payload);
  void discard_raw(const std::shared_ptr<WsConnection>& connection, Poco::Buffer<char>& buffer);
  void tick(Loop& loop, SteadyClock::time_point now) noexcept;
  static void wake(const Loop& loop) noexcept;
  std::vector<std::shared_ptr<WsConnection>> all_connections();

  const HubOptions options_;
  MessageHandler& handler_;
  std::shared_ptr<spdlog::logger> log_;
  std::chrono::milliseconds tick_period_;
  // Created by start(), then fixed: loops are never added or removed.
  std::vector<std::unique_ptr<Loop>> loops_;

  mutable std::mutex mutex_;
  std::condition_variable emptied_;                     // signalled when open_ shrinks
  std::unordered_map<std::string, std::size_t> per_ip_; // guarded: admitted per peer IP
  std::size_t admitted_ = 0;                            // guarded
  std::size_t open_ = 0;      // guarded: registered connections, refused ones included
  std::uint64_t next_id_ = 1; // guarded (0 = a loop's wake fd)
  bool started_ = false;      // guarded
  bool accepting_ = true;     // guarded
  bool stopped_ = false;      // guarded

  std::atomic<bool> running_{false};
};

} // namespace exai::net
