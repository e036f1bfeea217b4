#pragma once

// Kept-alive HTTP/1.1 connections to one provider endpoint. A request leases
// a connection (the newest idle one that still looks alive, or one it has just
// opened) and gives it back only when its answer was read to the end and the
// server allowed keep-alive; every other way out of a lease closes the
// connection. Idle connections are closed after the idle time, and never
// used past the server's `Keep-Alive: timeout=` hint.

#include "core/providers/chat.hpp"
#include "core/util/unique_fd.hpp"
#include "net/upstream/upstream_session.hpp"

#include <Poco/Net/StreamSocket.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace exai::net {

// One open connection to a provider.
struct UpstreamConnection {
  std::unique_ptr<UpstreamSession> session;
  // A dup() of the socket: a stop request shuts it down from another thread,
  // which wakes a blocking read without touching Poco's or OpenSSL's state.
  core::UniqueFd abort_fd;
  std::chrono::steady_clock::time_point usable_until; // while idle in the pool
};

// The seconds of a `Keep-Alive: timeout=N[, max=M]` header; nullopt when absent
// or unreadable.
std::optional<std::chrono::seconds> keep_alive_timeout(std::string_view header);

class ConnectionPool {
public:
  using Clock = std::chrono::steady_clock;
  struct Options {
    std::size_t max_idle = 4;                      // the provider's capacity scope
    std::chrono::milliseconds idle_timeout{30000}; // 0: nothing is kept
    std::function<Clock::time_point()> clock;      // default: steady_clock::now
  };

  class Lease;

  explicit ConnectionPool(Options options);
  ~ConnectionPool();
  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;

  // The newest idle connection still inside its time and with nothing to read
  // (a readable idle connection was closed by the server or sent garbage: it
  // is closed here); nullopt when there is none.
  std::optional<Lease> take();
  // A lease for a connection just opened (counted as opened).
  Lease adopt(std::unique_ptr<UpstreamConnection> connection);
  void count_stale_retry() noexcept;

  // Closes idle connections whose time is up; returns how long until the next
  // idle one expires (nullopt: none idle).
  std::optional<std::chrono::milliseconds> sweep();

  core::UpstreamPoolStats stats() const;

private:
  void give_back(std::unique_ptr<UpstreamConnection> connection,
                 std::optional<std::chrono::milliseconds> server_hint) noexcept;
  void lease_ended() noexcept;
  Clock::time_point now() const;

  Options options_;
  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<UpstreamConnection>> idle_; // guarded; oldest first
  std::size_t leased_ = 0;                                // guarded
  std::uint64_t reused_ = 0;                              // guarded
  std::uint64_t opened_ = 0;                              // guarded
  std::uint64_t stale_retries_ = 0;                       // guarded
};

// One connection carrying one request. Move-only; closes the connection on
// destruction unless release() gave it back.
class ConnectionPool::Lease {
public:
  Lease(Lease&& other) noexcept;
  Lease& operator=(Lease&& other) noexcept;
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  ~Lease();

  UpstreamConnection& operator*() const noexcept { return *connection_; }
  UpstreamConnection* operator->() const noexcept { return connection_.get(); }
  // Whether the connection carried an earlier request.
  bool reused() const noexcept { return reused_; }

  // The answer was read to its end and the server keeps the connection open:
  // it goes back to the pool, usable until the idle time or `server_hint`
  // (less a safety margin), whichever is sooner.
  void release(std::optional<std::chrono::milliseconds> server_hint) noexcept;

private:
  friend class ConnectionPool;
  Lease(ConnectionPool& pool, std::unique_ptr<UpstreamConnection> connection, bool reused) noexcept;
  void close() noexcept;

  ConnectionPool* pool_ = nullptr;
  std::unique_ptr<UpstreamConnection> connection_;
  bool reused_ = false;
};

} // namespace exai::net
