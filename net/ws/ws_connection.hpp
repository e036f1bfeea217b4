#pragma once

// One upgraded WebSocket held by the ConnectionHub. It pins no thread: one of
// the hub's event loops watches its socket and reads a frame when one
// arrives. Outgoing frames are queued and written by one thread at a time.

#include "core/calls/call_sink.hpp"

#include <Poco/Net/WebSocket.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace exai::net {

class ConnectionHub;
class WsConnection;

// Internal to the hub: the connection this loop thread is reading (null
// when none). Replies queued for it are flushed by the loop afterwards.
void set_reading_connection(WsConnection* connection) noexcept;

using SteadyClock = std::chrono::steady_clock;

class WsConnection final : public core::CallSink,
                           public std::enable_shared_from_this<WsConnection> {
public:
  // Largest amount of queued, unsent output before the client counts as too
  // slow and is dropped.
  static constexpr std::size_t kMaxQueuedBytes = std::size_t{64} << 20U;

  WsConnection(ConnectionHub& hub,
               Poco::Net::WebSocket socket,
               std::uint64_t id,
               std::string peer_ip,
               SteadyClock::time_point now);
  WsConnection(const WsConnection&) = delete;
  WsConnection& operator=(const WsConnection&) = delete;
  WsConnection(WsConnection&&) = delete;
  WsConnection& operator=(WsConnection&&) = delete;
  ~WsConnection() override = default;

  // CallSink: queues one text frame; the owning event loop writes it (with
  // the send timeout). Thread-safe, never blocks on the network, never throws. Frames
  // sent after close() or after the connection is gone are dropped.
  void send(std::string frame) noexcept override;

  // Queues a close frame (code, reason) after everything already queued and
  // stops delivering messages. The hub drops the connection when the peer
  // answers the close, or after the linger time. Idempotent, thread-safe.
  void close(std::uint16_t code, std::string_view reason) noexcept;

  // Marks the hello handshake done (stops the hello timer). Reader thread.
  void mark_greeted() noexcept;

  // True after mark_greeted() and before close().
  bool greeted() const noexcept { return phase_.load() == Phase::open; }

  // True once close() was called or the connection is gone.
  bool closing() const noexcept { return phase_.load() >= Phase::closing; }

  // The session bound by hello; empty before. Thread-safe.
  std::string session_id() const;
  void set_session_id(std::string session_id);

  std::uint64_t id() const noexcept { return id_; }
  const std::string& peer_ip() const noexcept { return peer_ip_; }

private:
  friend class ConnectionHub;

  enum class Phase : int { awaiting_hello = 0, open = 1, closing = 2, closed = 3 };

  struct OutFrame {
    int flags;
    std::string payload;
  };

  static std::int64_t ticks(SteadyClock::time_point t) noexcept
  {
    return t.time_since_epoch().count();
  }

  // Queues a frame; schedules a flush unless one is running. False when the
  // connection no longer takes output.
  bool enqueue(int flags, std::string payload, bool is_close) noexcept;

  // Writes queued frames until the queue is empty, several as one TCP
  // segment when they are queued together. Only the thread that set
  // flushing_ calls it.
  void flush() noexcept;

  // Reader thread: flushes what the handler queued while this loop read.
  void flush_if_reader() noexcept
  {
    if (reader_must_flush_) {
      reader_must_flush_ = false;
      flush();
    }
  }

  ConnectionHub& hub_;
  Poco::Net::WebSocket socket_;
  const int fd_;
  const std::uint64_t id_;
  const std::string peer_ip_;
  std::size_t loop_ = 0; // the owning event loop; set once before publication

  // Timers, read by the loop's tick, written by the reader (steady ticks);
  // atomics because drop() and close() may run on other threads.
  std::atomic<Phase> phase_{Phase::awaiting_hello};
  std::atomic<std::int64_t> opened_at_;
  std::atomic<std::int64_t> last_rx_;         // any frame from the peer
  std::atomic<std::int64_t> last_message_;    // a data message from the peer
  std::atomic<std::int64_t> last_ping_;       // our last ping
  std::atomic<std::int64_t> ping_pending_{0}; // when our unanswered ping went out; 0 = none
  std::atomic<std::int64_t> closing_since_{0};
  bool counted_ = false; // set once before the connection is published

  // Reader-only state: touched only by the owning loop's thread.
  bool desynced_ = false; // a frame was refused mid-stream: discard raw bytes
  bool reader_must_flush_ = false;
  int fragment_opcode_ = 0;
  std::string fragments_; // a fragmented message being reassembled (rare)

  mutable std::mutex mutex_;
  // A vector, not a deque: an idle connection then holds no allocation here.
  std::vector<OutFrame> out_; // guarded by mutex_
  std::size_t out_bytes_ = 0; // guarded by mutex_
  bool flushing_ = false;     // guarded by mutex_
  bool close_queued_ = false; // guarded by mutex_
  bool closed_ = false;       // guarded by mutex_: dropped by the hub
  std::string session_id_;    // guarded by mutex_
};

} // namespace exai::net
