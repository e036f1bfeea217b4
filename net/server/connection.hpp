#pragma once

// One TCP connection owned by an EventLoop: its socket (non-blocking), its
// bounded output queue and the rules every kind of connection shares. The
// kinds (a WebSocket, an HTTP connection) derive from it and parse input.
//
// Output: any thread may queue() bytes; the owning loop writes them with one
// writev per batch, and waits for EPOLLOUT when the peer is slow. A thread
// other than the loop's that finds the queue empty writes its bytes itself
// (one send, no wake-up of the loop); what the socket does not take is queued. A peer whose
// queue stays over its bound for longer than the slow-client time is dropped
// (a client that stops reading cannot make the daemon hold its output
// forever), and a queue that would pass its hard cap drops the peer at once.
// Queued items may carry a tag (a call's request id): tags of items that never
// fully left are handed to on_dropped(), so their results can be kept for the
// session to collect.

#include "core/util/interface.hpp"
#include "core/util/unique_fd.hpp"
#include "net/server/event_loop.hpp"

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace exai::net {

// Told when a connection goes away (the hub's accounting). Loop thread.
class ConnectionObserver : public core::Interface {
public:
  virtual void on_connection_dropped(Connection& connection) noexcept = 0;
  // The connection proved itself (a complete request, a hello): it now takes
  // one of the MAX_CONNECTIONS places. False when none is left.
  virtual bool establish(Connection& connection) = 0;
};

struct OutputLimits {
  std::size_t bound = std::size_t{16} << 20U;    // over this for `slow_after`: dropped
  std::size_t hard_cap = std::size_t{64} << 20U; // would pass this: dropped at once
  Millis slow_after{10000};
};

// An accepted socket and who is at its other end: what every connection
// starts from, whichever protocol it speaks.
struct Accepted {
  core::UniqueFd fd;
  std::uint64_t id = 0;
  std::string peer_ip;
  bool loopback_peer = false;
};

class Connection : public std::enable_shared_from_this<Connection> {
public:
  Connection(EventLoop& loop, ConnectionObserver& observer, Accepted socket, OutputLimits limits);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  virtual ~Connection();

  std::uint64_t id() const noexcept { return id_; }
  int fd() const noexcept { return fd_.get(); }
  const std::string& peer_ip() const noexcept { return peer_ip_; }
  bool loopback_peer() const noexcept { return loopback_peer_; }
  EventLoop& loop() const noexcept { return loop_; }
  ConnectionObserver& observer() const noexcept { return observer_; }

  // Appends `bytes` to the output queue and has the loop write them. Any
  // thread; never blocks, never throws. False when the connection takes no
  // more output (dropped, closing, or the hard cap would be passed, which
  // drops it).
  // With `last`, nothing may follow (a close frame, the end of a response).
  bool queue(std::string bytes, std::string tag = {}, bool last = false) noexcept;

  // Closes the socket now: no more reads or writes; on_dropped() then runs.
  // Any thread (posted to the loop when called elsewhere). Idempotent.
  void drop(std::string why) noexcept;
  // drop() from a posted task even on the loop thread: for callers inside
  // someone else's callback (queue() is called by the engine under its own
  // locks, and on_dropped() calls back into the engine).
  void drop_later(std::string why) noexcept;

  bool dropped() const noexcept;
  // Nothing queued is left to send. Any thread.
  bool output_empty() const;

  // --- loop thread ---

  // epoll reported `events` for this socket.
  void handle_events(std::uint32_t events) noexcept;

  // Timers; the base checks the slow-client rule. Overrides call it.
  virtual void on_tick(SteadyClock::time_point now) noexcept;

  // Writes what is queued until the queue is empty or the socket is full.
  void flush() noexcept;

  // The events this connection wants besides EPOLLOUT (EPOLLIN, EPOLLRDHUP,
  // EPOLLET); set before adopt().
  std::uint32_t read_events() const noexcept { return read_events_; }

  // Takes the socket away (no shutdown, no on_dropped): the connection turns
  // into another kind (an HTTP connection into a WebSocket). Loop thread.
  core::UniqueFd release_socket() noexcept;

  // The hub's admission state of this connection (loop thread; read by the
  // hub under its own lock).
  enum class Admission { none, pending, established };
  Admission admission = Admission::none;
  std::uint64_t pending_seq = 0; // position in the hub's eviction order

protected:
  // Input arrived (or the peer closed: recv gives 0).
  virtual void on_readable() = 0;
  // Every queued byte has been written.
  virtual void on_drained() noexcept {}
  // The connection was dropped; `unsent_tags` are the tags of queued items
  // that never fully left.
  virtual void on_dropped(std::vector<std::string> unsent_tags) noexcept;

  void set_read_events(std::uint32_t events) noexcept;
  // One non-blocking recv of at most `want` bytes (and at most the loop's
  // receive buffer), appended to `input`; how many came. Loop thread only.
  // 0 also when the peer closed (dropped as `closed_why`) or the receive
  // failed (dropped), not only when nothing is there yet.
  std::size_t receive_into(std::string& input, std::size_t want, std::string_view closed_why);
  // Keeps queued output unwritten until release_output() (while another
  // thread still writes the response head on the socket). Any thread.
  void hold_output() noexcept;
  void release_output() noexcept;
  // Everything queued was sent and the last item was queued (queue(..., last
  // = true)): nothing more can come. Checked under one lock, so a writer on
  // another thread cannot slip a final chunk in between.
  bool output_finished() const;
  std::size_t queued_bytes() const;
  // The socket without ownership semantics changes (e.g. to hand a dup to
  // another thread).
  core::UniqueFd& socket() noexcept { return fd_; }

private:
  friend class EventLoop;
  struct Chunk {
    std::string bytes;
    std::string tag;
  };
  void drop_now(std::string_view why) noexcept;
  void update_watch() noexcept;
  // Writes what the socket takes now (under mutex_, nothing queued ahead);
  // how many bytes left.
  std::size_t send_now(const std::string& bytes) noexcept;

  EventLoop& loop_;
  ConnectionObserver& observer_;
  core::UniqueFd fd_;
  const std::uint64_t id_;
  const std::string peer_ip_;
  const bool loopback_peer_;
  const OutputLimits limits_;
  std::uint32_t read_events_ = 0; // loop thread
  bool want_write_ = false;       // loop thread: EPOLLOUT armed
  bool adopted_ = false;          // loop thread: registered with the loop's epoll

  mutable std::mutex mutex_;
  std::deque<Chunk> out_;        // guarded by mutex_
  std::size_t out_offset_ = 0;   // guarded by mutex_: bytes of out_.front() already sent
  std::size_t out_bytes_ = 0;    // guarded by mutex_
  bool flush_requested_ = false; // guarded by mutex_
  bool sealed_ = false;          // guarded by mutex_
  bool held_ = false;            // guarded by mutex_
  bool dropped_ = false;         // guarded by mutex_
  SteadyClock::time_point over_bound_since_{}; // guarded by mutex_; {} = within bound
};

} // namespace exai::net
