#include "net/ws/ws_connection.hpp"

#include "net/protocol/op_frames.hpp"
#include "net/protocol/op_protocol.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

namespace exai::net {

namespace {

namespace ws = core::ws;

constexpr std::size_t kTailKeep = std::size_t{64} << 10U; // capacity kept when empty

} // namespace

// Adapts the decoder's events to the connection (keeps the codec free of it).
class WsConnection::Events final : public ws::EventSink {
public:
  explicit Events(WsConnection& owner)
      : owner_(owner)
  {
  }
  void on_event(const ws::Event& event) override { owner_.handle(event); }

private:
  WsConnection& owner_;
};

WsConnection::WsConnection(EventLoop& loop,
                           ConnectionObserver& observer,
                           Accepted socket,
                           OutputLimits output,
                           const WsOptions& options,
                           MessageHandler& handler,
                           SteadyClock::time_point now)
    : Connection(loop, observer, std::move(socket), output)
    , options_(options)
    , handler_(handler)
    , decoder_(ws::Role::server, options.pending_max_bytes)
    , opened_at_(now)
    , last_rx_(now)
    , last_message_(now)
    , last_ping_(now)
{
  set_read_events(EPOLLIN | EPOLLRDHUP);
}

bool
WsConnection::send_text(std::string_view payload, std::string tag) noexcept
{
  try {
    std::string frame;
    frame.reserve(payload.size() + 10);
    ws::append_header(frame, ws::Opcode::text, true, payload.size());
    frame.append(payload);
    return queue(std::move(frame), std::move(tag));
  } catch (const std::bad_alloc&) {
    return false;
  }
}

void
WsConnection::close(std::uint16_t code, std::string_view reason) noexcept
{
  if (loop().on_loop_thread()) {
    close_now(code, reason);
    return;
  }
  try {
    loop().post([self = std::static_pointer_cast<WsConnection>(shared_from_this()),
                 code,
                 why = std::string(reason)] { self->close_now(code, why); });
  } catch (const std::exception&) {
    drop("out of memory while closing");
  }
}

void
WsConnection::close_now(std::uint16_t code, std::string_view reason) noexcept
{
  Phase expected = phase_.load();
  if (expected == Phase::closing || dropped()) {
    return;
  }
  phase_ = Phase::closing;
  closing_since_ = SteadyClock::now();
  try {
    if (!queue(ws::encode_close(code, reason), {}, true)) {
      drop("closed");
      return;
    }
  } catch (const std::exception&) {
    drop("out of memory while closing");
    return;
  }
  if (peer_closed_ && output_empty()) {
    drop("closed");
  }
}

bool
WsConnection::greet(std::string session_id, std::string owner)
{
  if (phase_.load() != Phase::awaiting_hello || !observer().establish(*this)) {
    return false;
  }
  session_id_ = std::move(session_id);
  owner_ = std::move(owner);
  phase_ = Phase::open;
  decoder_.set_max_message_bytes(options_.max_message_bytes);
  return true;
}

void
WsConnection::on_progress(std::string_view request_id,
                          std::string_view tool,
                          std::string_view note) noexcept
{
  try {
    send_text(protocol::frames::progress(request_id, tool, note));
  } catch (const std::exception&) {
    // Out of memory for a progress note: skipping it loses nothing.
  }
}

void
WsConnection::on_ack(std::string_view request_id,
                     std::string_view tool,
                     std::chrono::milliseconds timeout) noexcept
{
  try {
    send_text(
        protocol::frames::ack(request_id, tool, static_cast<double>(timeout.count()) / 1000.0));
  } catch (const std::exception&) {
    // As for progress: the result still follows.
  }
}

bool
WsConnection::on_result(std::string_view request_id, const core::ToolResult& result) noexcept
{
  try {
    return send_text(protocol::frames::result(request_id, result), std::string(request_id));
  } catch (const std::exception&) {
    return false; // the result stays stored; the session collects it on resume
  }
}

void
WsConnection::on_readable()
{
  Events events(*this);
  if (tail_.empty()) {
    const auto buffer = loop().receive_buffer();
    const ssize_t n = ::recv(fd(), buffer.data(), buffer.size(), MSG_DONTWAIT);
    if (n == 0) {
      drop("peer closed");
      return;
    }
    if (n < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        drop("receive failed");
      }
      return;
    }
    const auto input = buffer.first(static_cast<std::size_t>(n));
    const std::size_t consumed = decoder_.feed(input, events);
    if (!dropped() && consumed < input.size()) {
      tail_.assign(input.data() + consumed, input.size() - consumed);
    }
    return;
  }
  // A frame is in progress: what arrives goes behind it, one recv per wake-up.
  if (receive_into(tail_, loop().receive_buffer().size(), "peer closed") == 0) {
    return;
  }
  const std::size_t consumed = decoder_.feed(std::span<char>(tail_.data(), tail_.size()), events);
  if (dropped()) {
    return;
  }
  tail_.erase(0, consumed);
  if (tail_.empty() && tail_.capacity() > kTailKeep) {
    tail_ = std::string(); // an idle connection holds no input memory
  }
}

void
WsConnection::handle(const ws::Event& event)
{
  const auto now = SteadyClock::now();
  last_rx_ = now;
  switch (event.kind) {
  case ws::Event::Kind::message:
    if (phase_.load() == Phase::closing) {
      return; // after our close frame, data is read and dropped
    }
    last_message_ = now;
    handler_.on_message(std::static_pointer_cast<WsConnection>(shared_from_this()), event.payload);
    return;
  case ws::Event::Kind::ping:
    if (phase_.load() != Phase::closing) {
      queue(ws::encode_frame(ws::Opcode::pong, event.payload));
    }
    return;
  case ws::Event::Kind::pong:
    ping_pending_ = {};
    return;
  case ws::Event::Kind::close:
    peer_closed_ = true;
    decoder_.stop();
    if (phase_.load() == Phase::closing) {
      if (output_empty()) {
        drop("close handshake done");
      }
      return;
    }
    // Answer with the peer's code (RFC 6455 §5.5.1); a close without a code
    // is answered without one.
    close_now(event.code, "");
    return;
  case ws::Event::Kind::error:
    loop().log()->info("frame refused id={} peer={} code={} reason=\"{}\"",
                       id(),
                       peer_ip(),
                       event.code,
                       event.reason);
    close_now(event.code, event.reason);
    return;
  }
}

void
WsConnection::on_drained() noexcept
{
  if (phase_.load() == Phase::closing && peer_closed_) {
    drop("closed");
  }
}

void
WsConnection::on_dropped(std::vector<std::string> unsent_tags) noexcept
{
  handler_.on_closed(std::static_pointer_cast<WsConnection>(shared_from_this()),
                     std::move(unsent_tags));
}

void
WsConnection::on_tick(SteadyClock::time_point now) noexcept
{
  Connection::on_tick(now);
  if (dropped()) {
    return;
  }
  const Phase phase = phase_.load();
  if (phase == Phase::closing) {
    if (now - closing_since_ >= options_.close_linger) {
      drop("close handshake timed out");
    }
    return;
  }
  if (phase == Phase::awaiting_hello && now - opened_at_ >= options_.hello_timeout) {
    loop().log()->info("session rejected peer={} reason=\"hello timeout\"", peer_ip());
    close_now(protocol::kCloseHelloTimeout, "hello timeout");
    return;
  }
  if (ping_pending_ != SteadyClock::time_point{}) {
    if (now - ping_pending_ >= options_.ping_timeout) {
      drop("no pong within EXAI_WS_PING_TIMEOUT");
      return;
    }
  } else if (now - std::max(last_rx_, last_ping_) >= options_.ping_interval) {
    last_ping_ = now;
    ping_pending_ = now;
    queue(ws::encode_frame(ws::Opcode::ping, {}));
  }
  if (phase == Phase::open && now - last_message_ >= options_.idle_timeout) {
    loop().log()->info("session expired id={} peer={}", id(), peer_ip());
    close_now(protocol::kCloseNormal, "session idle timeout");
  }
}

} // namespace exai::net
