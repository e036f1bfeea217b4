#include "net/ws/ws_connection.hpp"

#include "net/ws/connection_hub.hpp"

#include <Poco/Exception.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

namespace exai::net {

namespace {

constexpr int kFin = static_cast<int>(Poco::Net::WebSocket::FRAME_FLAG_FIN);

// The connection the current worker is reading, so that replies sent from
// inside MessageHandler::on_message are flushed by that worker afterwards
// instead of costing a task hand-off.
thread_local WsConnection* tls_reading = nullptr;

// A failure only costs extra segments.
void
set_cork(int fd, bool on) noexcept
{
  const int value = on ? 1 : 0;
  ::setsockopt(fd, IPPROTO_TCP, TCP_CORK, &value, sizeof value);
}

} // namespace

void
set_reading_connection(WsConnection* connection) noexcept
{
  tls_reading = connection;
}

WsConnection::WsConnection(ConnectionHub& hub,
                           Poco::Net::WebSocket socket,
                           std::uint64_t id,
                           std::string peer_ip,
                           SteadyClock::time_point now)
    : hub_(hub)
    , socket_(std::move(socket))
    , fd_(socket_.impl()->sockfd())
    , id_(id)
    , peer_ip_(std::move(peer_ip))
    , opened_at_(ticks(now))
    , last_rx_(ticks(now))
    , last_message_(ticks(now))
    , last_ping_(ticks(now))
{
}

void
WsConnection::send(std::string frame) noexcept
{
  enqueue(Poco::Net::WebSocket::FRAME_TEXT, std::move(frame), false);
}

void
WsConnection::close(std::uint16_t code, std::string_view reason) noexcept
{
  try {
    std::string payload;
    payload.reserve(2 + reason.size());
    payload += static_cast<char>(code >> 8U);
    payload += static_cast<char>(code & 0xffU);
    payload += reason.substr(0, 123); // control frames carry at most 125 bytes
    if (enqueue(kFin | Poco::Net::WebSocket::FRAME_OP_CLOSE, std::move(payload), true)) {
      closing_since_ = ticks(SteadyClock::now());
      Phase expected = phase_.load();
      while (expected < Phase::closing && !phase_.compare_exchange_weak(expected, Phase::closing)) {
      }
    }
  } catch (const std::exception&) {
    hub_.drop(shared_from_this(), "out of memory while closing");
  }
}

void
WsConnection::mark_greeted() noexcept
{
  Phase expected = Phase::awaiting_hello;
  phase_.compare_exchange_strong(expected, Phase::open);
}

std::string
WsConnection::session_id() const
{
  const std::lock_guard lock(mutex_);
  return session_id_;
}

void
WsConnection::set_session_id(std::string session_id)
{
  const std::lock_guard lock(mutex_);
  session_id_ = std::move(session_id);
}

bool
WsConnection::enqueue(int flags, std::string payload, bool is_close) noexcept
{
  bool schedule = false;
  bool overflow = false;
  {
    const std::lock_guard lock(mutex_);
    if (closed_ || close_queued_) {
      return false;
    }
    if (out_bytes_ + payload.size() > kMaxQueuedBytes) {
      overflow = true;
    } else {
      out_bytes_ += payload.size();
      try {
        out_.push_back(OutFrame{flags, std::move(payload)});
      } catch (const std::bad_alloc&) {
        overflow = true;
      }
      close_queued_ = is_close;
      if (!overflow && !flushing_) {
        flushing_ = true;
        schedule = true;
      }
    }
  }
  if (overflow) {
    hub_.drop(shared_from_this(), "send queue overflow");
    return false;
  }
  if (schedule) {
    if (tls_reading == this) {
      reader_must_flush_ = true; // the reading worker flushes after the handler
    } else {
      hub_.post_flush(shared_from_this());
    }
  }
  return true;
}

void
WsConnection::flush() noexcept
{
  std::vector<OutFrame> batch;
  for (;;) {
    {
      const std::lock_guard lock(mutex_);
      if (out_.empty() || closed_) {
        out_ = std::vector<OutFrame>(); // release the capacity while idle
        out_bytes_ = 0;
        flushing_ = false;
        return;
      }
      batch.swap(out_);
      out_.clear();
      out_bytes_ = 0;
    }
    // Frames queued together (progress, ack, result) leave as one segment:
    // on loopback each segment costs a full receive path and a peer wake-up.
    const bool cork = batch.size() > 1;
    if (cork) {
      set_cork(fd_, true);
    }
    for (auto& frame : batch) {
      try {
        socket_.sendFrame(
            frame.payload.data(), static_cast<int>(frame.payload.size()), frame.flags);
      } catch (const std::exception& e) {
        const auto* poco = dynamic_cast<const Poco::Exception*>(&e);
        {
          const std::lock_guard lock(mutex_);
          flushing_ = false;
        }
        hub_.drop(shared_from_this(),
                  std::string("send failed: ") +
                      (poco != nullptr ? poco->displayText() : e.what()));
        return;
      }
    }
    if (cork) {
      set_cork(fd_, false);
    }
    batch.clear();
  }
}

} // namespace exai::net
