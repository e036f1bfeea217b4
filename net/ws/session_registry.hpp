#pragma once

// The sessions the daemon issued (hello_ack session_id), so that a client can
// resume one after reconnecting. Bounded: a session with no connection is
// forgotten after SESSION_TIMEOUT_SECS, and at most kMaxSessions are kept.
// Sessions without a connection are also listed in the order they were left,
// so making room and sweeping touch only the sessions they forget: with the
// registry full, a hello no longer scans 100,000 entries on the event loop.

#include <chrono>
#include <cstddef>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>

namespace exai::net {

class SessionRegistry {
public:
  static constexpr std::size_t kMaxSessions = 100000;
  using Clock = std::chrono::steady_clock;

  explicit SessionRegistry(std::chrono::milliseconds ttl)
      : ttl_(ttl)
  {
  }

  // Issues a new session id, attached to one connection.
  std::string create(Clock::time_point now);

  // Attaches one more connection to `session_id`. False when the id is
  // unknown or expired (the caller then issues a new one).
  bool resume(const std::string& session_id, Clock::time_point now);

  // One connection of `session_id` went away; the session expires `ttl`
  // after its last connection left.
  void detach(const std::string& session_id, Clock::time_point now);

  // Forgets detached sessions idle longer than the ttl.
  void sweep(Clock::time_point now);

  // Sessions known (attached or resumable).
  std::size_t size() const;

  // Sessions with at least one connection.
  std::size_t attached() const;

private:
  struct Entry {
    std::size_t connections = 0;
    Clock::time_point last_seen;
    std::list<std::string>::iterator detached; // its place in detached_ while connections == 0
  };

  void evict_oldest_detached(); // mutex_ held

  const std::chrono::milliseconds ttl_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, Entry> sessions_; // guarded by mutex_
  std::list<std::string> detached_; // guarded by mutex_: ids without a connection, oldest first
  std::size_t attached_ = 0;        // guarded by mutex_
};

} // namespace exai::net
