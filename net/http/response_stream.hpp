#pragma once

// The body of an HTTP response that outlives its handler (an SSE stream of a
// running tool call, a JSON answer sent when the call ends). The handler sends
// the head and returns; the event loop that owns the connection writes what
// is written here, so no thread waits for the body. The response is
// close-delimited: the connection closes after end().

#include "core/util/interface.hpp"
#include "net/server/connection.hpp"

#include <memory>
#include <mutex>
#include <string>

namespace exai::net {

class ResponseStream {
public:
  // Told about the stream's life, on its connection's loop thread.
  class Listener : public core::Interface {
  public:
    // The connection is gone (client left, or the stream ended and closed).
    virtual void on_stream_closed() noexcept = 0;
    // About every tick while the stream is open (keep-alive comments,
    // heartbeats).
    virtual void on_stream_tick(SteadyClock::time_point /*now*/) noexcept {}
  };

  explicit ResponseStream(const std::shared_ptr<Connection>& connection)
      : connection_(connection)
  {
  }

  // Appends body bytes. Any thread; never blocks. False when the client is
  // gone or the stream ended.
  bool write(std::string bytes) noexcept
  {
    const auto connection = connection_.lock();
    return connection && connection->queue(std::move(bytes));
  }

  // Appends the last bytes (may be empty); the connection closes once they
  // are written. Idempotent.
  void end(std::string last = {}) noexcept
  {
    {
      const std::lock_guard lock(mutex_);
      if (ended_) {
        return;
      }
      ended_ = true;
    }
    if (const auto connection = connection_.lock()) {
      if (!connection->queue(std::move(last), {}, true)) {
        connection->drop_later("response stream ended"); // end() runs inside engine callbacks
      }
    }
  }

  bool ended() const
  {
    const std::lock_guard lock(mutex_);
    return ended_;
  }

  // Whom to tell about closing and ticks (held weakly).
  void set_listener(std::weak_ptr<Listener> listener)
  {
    const std::lock_guard lock(mutex_);
    listener_ = std::move(listener);
  }

  std::shared_ptr<Listener> listener() const
  {
    const std::lock_guard lock(mutex_);
    return listener_.lock();
  }

private:
  std::weak_ptr<Connection> connection_;
  mutable std::mutex mutex_;
  std::weak_ptr<Listener> listener_; // guarded by mutex_
  bool ended_ = false;               // guarded by mutex_
};

} // namespace exai::net
