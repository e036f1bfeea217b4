#pragma once

// ConnectionHub: holds every upgraded WebSocket without a thread per
// connection. One poll thread (epoll, one-shot per socket) hands ready sockets
// to a small fixed worker pool; a worker reads one frame into its own shared
// receive buffer and passes complete messages to the MessageHandler. The poll
// thread also runs the timers: hello timeout, keep-alive pings, idle expiry,
// close linger.

#include "core/config.hpp"
#include "net/ws_connection.hpp"

#include <Poco/Net/WebSocket.h>
#include <spdlog/spdlog.h>

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
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

  static HubOptions from(const core::DaemonConfig& config);
};

// What the hub delivers. Implemented by the op protocol (OpDispatcher).
class MessageHandler {
public:
  MessageHandler() = default;
  MessageHandler(const MessageHandler&) = delete;
  MessageHandler& operator=(const MessageHandler&) = delete;
  MessageHandler(MessageHandler&&) = delete;
  MessageHandler& operator=(MessageHandler&&) = delete;
  virtual ~MessageHandler() = default;

  // One complete text or binary message. Called on a hub worker; never twice
  // at the same time for one connection. Must not block for long.
  virtual void on_message(const std::shared_ptr<WsConnection>& connection,
                          std::string_view payload) = 0;

  // The connection is gone. Called exactly once per connection, on any thread.
  virtual void on_closed(const std::shared_ptr<WsConnection>& connection) noexcept = 0;

  // Periodic housekeeping, on the poll thread.
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

  // Starts the poll thread and the workers. Throws std::system_error when
  // epoll cannot be created.
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

  // Threads the hub runs (poll + workers), for diagnostics.
  std::size_t thread_count() const noexcept { return options_.workers + 1; }

  // Removes `connection` at once: no more reads or writes, socket shut down,
  // MessageHandler::on_closed called. Idempotent, any thread.
  void drop(const std::shared_ptr<WsConnection>& connection, std::string_view why) noexcept;

  // Schedules a worker to write `connection`'s queued frames.
  void post_flush(std::shared_ptr<WsConnection> connection) noexcept;

private:
  struct Task {
    std::shared_ptr<WsConnection> connection;
    bool flush = false; // else: read one frame
  };

  void poll_loop() noexcept;
  void worker_loop() noexcept;
  void post(Task task) noexcept;
  void read_one(const std::shared_ptr<WsConnection>& connection, Poco::Buffer<char>& buffer);
  void deliver(const std::shared_ptr<WsConnection>& connection,
               int opcode,
               bool fin,
               std::string_view payload);
  void discard_raw(const std::shared_ptr<WsConnection>& connection, Poco::Buffer<char>& buffer);
  void rearm(const WsConnection& connection) noexcept;
  void tick(SteadyClock::time_point now) noexcept;
  void wake() noexcept;

  const HubOptions options_;
  MessageHandler& handler_;
  std::shared_ptr<spdlog::logger> log_;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  std::chrono::milliseconds tick_period_;

  mutable std::mutex mutex_;
  std::condition_variable emptied_; // signalled when connections_ shrinks
  std::unordered_map<std::uint64_t, std::shared_ptr<WsConnection>> connections_; // guarded
  std::unordered_map<std::string, std::size_t> per_ip_; // guarded: admitted per peer IP
  std::size_t admitted_ = 0;                            // guarded
  std::uint64_t next_id_ = 1;                           // guarded (0 = the wake fd)
  bool accepting_ = true;                               // guarded
  bool stopped_ = false;                                // guarded

  std::mutex task_mutex_;
  std::condition_variable task_ready_;
  std::deque<Task> tasks_;    // guarded by task_mutex_
  bool workers_stop_ = false; // guarded by task_mutex_

  std::atomic<bool> polling_{false};
  std::thread poll_thread_;
  std::vector<std::thread> workers_;
};

} // namespace exai::net
