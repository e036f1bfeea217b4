#include "net/ws/connection_hub.hpp"

#include "net/protocol/op_protocol.hpp"

#include <Poco/Exception.h>
#include <Poco/Net/NetException.h>

#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <system_error>

namespace exai::net {

namespace {

constexpr int kFin = static_cast<int>(Poco::Net::WebSocket::FRAME_FLAG_FIN);

using Poco::Net::WebSocket;

constexpr std::uint64_t kWakeId = 0;
constexpr std::size_t kShrinkAbove = std::size_t{1} << 20U; // worker buffer kept at most 1 MiB
constexpr std::size_t kInitialBuffer = std::size_t{64} << 10U;

std::int64_t
to_ticks(Millis d)
{
  return std::chrono::duration_cast<SteadyClock::duration>(d).count();
}

} // namespace

HubOptions
HubOptions::from(const core::DaemonConfig& config)
{
  HubOptions o;
  o.max_connections = config.max_connections;
  o.max_connections_per_ip = config.max_connections_per_ip;
  o.max_frame_bytes = config.max_bytes;
  o.hello_timeout = config.hello_timeout;
  o.ping_interval = config.ping_interval;
  o.ping_timeout = config.ping_timeout;
  o.idle_timeout = config.session_timeout;
  o.workers = config.worker_threads;
  o.busy_poll = config.busy_poll;
  return o;
}

ConnectionHub::ConnectionHub(HubOptions options,
                             MessageHandler& handler,
                             std::shared_ptr<spdlog::logger> log)
    : options_(std::move(options))
    , handler_(handler)
    , log_(std::move(log))
{
  // Timers fire within a quarter of the shortest interval (10 ms .. 250 ms).
  const auto shortest =
      std::min({options_.hello_timeout, options_.ping_interval, options_.ping_timeout});
  tick_period_ = std::clamp(shortest / 4, Millis(10), Millis(250));
}

ConnectionHub::~ConnectionHub()
{
  stop(protocol::kCloseGoingAway, "server shutting down", Millis(0));
  for (const auto& loop : loops_) {
    if (loop->epoll_fd >= 0) {
      ::close(loop->epoll_fd);
    }
    if (loop->wake_fd >= 0) {
      ::close(loop->wake_fd);
    }
  }
}

void
ConnectionHub::start()
{
  for (std::size_t i = 0; i < loop_count(); ++i) {
    // Owned by loops_ at once: the destructor closes whatever was opened.
    Loop& loop = *loops_.emplace_back(std::make_unique<Loop>());
    loop.epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
    if (loop.epoll_fd < 0) {
      throw std::system_error(errno, std::generic_category(), "epoll_create1");
    }
    loop.wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (loop.wake_fd < 0) {
      throw std::system_error(errno, std::generic_category(), "eventfd");
    }
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u64 = kWakeId;
    if (::epoll_ctl(loop.epoll_fd, EPOLL_CTL_ADD, loop.wake_fd, &event) != 0) {
      throw std::system_error(errno, std::generic_category(), "epoll_ctl(eventfd)");
    }
  }
  running_ = true;
  for (const auto& loop : loops_) {
    loop->thread = std::thread([this, raw = loop.get()] { run_loop(*raw); });
  }
  const std::lock_guard lock(mutex_);
  started_ = true;
}

bool
ConnectionHub::admit(Poco::Net::WebSocket socket, const std::string& peer_ip) noexcept
{
  try {
    socket.setMaxPayloadSize(static_cast<int>(options_.max_frame_bytes));
    const Poco::Timespan io(
        std::chrono::duration_cast<std::chrono::microseconds>(options_.io_timeout).count());
    socket.setSendTimeout(io);
    socket.setReceiveTimeout(io);
    socket.setNoDelay(true);
    std::shared_ptr<WsConnection> connection;
    std::string refusal;
    std::uint16_t refusal_code = protocol::kClosePolicy;
    {
      const std::lock_guard lock(mutex_);
      if (stopped_ || !started_) {
        return false; // the socket closes when `socket` goes out of scope
      }
      if (!accepting_) {
        refusal = "server shutting down";
        refusal_code = protocol::kCloseGoingAway;
      } else if (admitted_ >= options_.max_connections) {
        refusal = "too many connections (MAX_CONNECTIONS)";
      } else if (const auto it = per_ip_.find(peer_ip);
                 it != per_ip_.end() && it->second >= options_.max_connections_per_ip) {
        refusal = "too many connections from this address (MAX_CONNECTIONS_PER_IP)";
      }
      const std::uint64_t id = next_id_++;
      connection =
          std::make_shared<WsConnection>(*this, std::move(socket), id, peer_ip, SteadyClock::now());
      connection->loop_ = id % loops_.size();
      if (refusal.empty()) {
        connection->counted_ = true;
        ++admitted_;
        ++per_ip_[peer_ip];
      }
      ++open_;
    }
    Loop& loop = *loops_[connection->loop_];
    {
      const std::lock_guard lock(loop.mutex);
      loop.connections.emplace(connection->id(), connection);
      // Level-triggered: a frame left unread is reported again by the next wait.
      epoll_event event{};
      event.events = EPOLLIN | EPOLLRDHUP;
      event.data.u64 = connection->id();
      if (::epoll_ctl(loop.epoll_fd, EPOLL_CTL_ADD, connection->fd_, &event) != 0 &&
          refusal.empty()) {
        refusal = "internal error";
      }
    }
    if (!refusal.empty()) {
      log_->warn("connection refused peer={} reason=\"{}\"", peer_ip, refusal);
      connection->close(refusal_code, refusal);
      return false;
    }
    log_->debug("connection opened id={} peer={}", connection->id(), peer_ip);
    return true;
  } catch (const std::exception& e) {
    log_->error("connection admission failed peer={} error=\"{}\"", peer_ip, e.what());
    return false;
  }
}

void
ConnectionHub::drop(const std::shared_ptr<WsConnection>& connection, std::string_view why) noexcept
{
  {
    Loop& loop = *loops_[connection->loop_];
    const std::lock_guard lock(loop.mutex);
    if (loop.connections.erase(connection->id()) == 0) {
      return; // already dropped
    }
    ::epoll_ctl(loop.epoll_fd, EPOLL_CTL_DEL, connection->fd_, nullptr);
  }
  {
    const std::lock_guard lock(mutex_);
    --open_;
    if (connection->counted_) {
      --admitted_;
      const auto ip = per_ip_.find(connection->peer_ip());
      if (ip != per_ip_.end() && --ip->second == 0) {
        per_ip_.erase(ip);
      }
    }
  }
  {
    const std::lock_guard lock(connection->mutex_);
    connection->closed_ = true;
    connection->out_.clear();
    connection->out_bytes_ = 0;
  }
  connection->phase_ = WsConnection::Phase::closed;
  // Unblocks a thread that may be reading or writing it; the descriptor
  // itself closes with the last reference.
  ::shutdown(connection->fd_, SHUT_RDWR);
  log_->debug("connection closed id={} peer={} reason=\"{}\"",
              connection->id(),
              connection->peer_ip(),
              why);
  if (connection->counted_) {
    handler_.on_closed(connection);
  }
  emptied_.notify_all();
}

void
ConnectionHub::post_flush(std::shared_ptr<WsConnection> connection) noexcept
{
  Loop& loop = *loops_[connection->loop_];
  bool first = false;
  try {
    const std::lock_guard lock(loop.mutex);
    first = loop.flushes.empty();
    loop.flushes.push_back(std::move(connection));
  } catch (const std::bad_alloc&) {
    return; // the frames stay queued; the next post or read flushes them
  }
  if (first) {
    wake(loop); // one wake-up covers every flush posted before the loop runs them
  }
}

void
ConnectionHub::wake(const Loop& loop) noexcept
{
  const std::uint64_t one = 1;
  [[maybe_unused]] const auto n = ::write(loop.wake_fd, &one, sizeof one);
}

std::shared_ptr<WsConnection>
ConnectionHub::find(Loop& loop, std::uint64_t id)
{
  const std::lock_guard lock(loop.mutex);
  const auto it = loop.connections.find(id);
  return it != loop.connections.end() ? it->second : nullptr;
}

void
ConnectionHub::run_flushes(Loop& loop) noexcept
{
  std::vector<std::shared_ptr<WsConnection>> flushes;
  {
    const std::lock_guard lock(loop.mutex);
    flushes.swap(loop.flushes);
  }
  for (const auto& connection : flushes) {
    connection->flush();
  }
}

void
ConnectionHub::run_loop(Loop& loop) noexcept
{
  constexpr int kMaxEvents = 256;
  std::array<epoll_event, kMaxEvents> events{};
  Poco::Buffer<char> buffer(kInitialBuffer); // this loop's shared receive buffer
  auto now = SteadyClock::now();
  auto next_tick = now + tick_period_;
  bool poll_first = false;
  while (running_) {
    const auto idle_since = now; // the previous round's work ended here
    const int n = wait_events(loop, events, next_tick, poll_first);
    poll_first = poll_next_wait(n, SteadyClock::now() - idle_since, options_.busy_poll);
    for (int i = 0; i < n; ++i) {
      const std::uint64_t id = events[static_cast<std::size_t>(i)].data.u64;
      if (id == kWakeId) {
        std::uint64_t drained = 0;
        [[maybe_unused]] const auto r = ::read(loop.wake_fd, &drained, sizeof drained);
        run_flushes(loop);
        continue;
      }
      const auto connection = find(loop, id);
      if (!connection) {
        continue; // dropped since the wait returned
      }
      try {
        read_one(connection, buffer);
      } catch (const std::exception& e) {
        log_->error("connection failed id={} error=\"{}\"", connection->id(), e.what());
        drop(connection, "internal error");
      }
      set_reading_connection(nullptr);
      if (buffer.capacity() > kShrinkAbove) {
        buffer.setCapacity(kInitialBuffer, false);
      }
    }
    now = SteadyClock::now();
    if (now >= next_tick) {
      tick(loop, now);
      next_tick = now + tick_period_;
    }
  }
}

int
ConnectionHub::wait_events(Loop& loop,
                           std::span<epoll_event> events,
                           SteadyClock::time_point next_tick,
                           bool poll_first) noexcept
{
  // Adaptive busy polling (EXAI_WS_BUSY_POLL_US, rule in poll_next_wait). A
  // client that sends its next frame soon after our reply finds the loop
  // awake instead of paying for a thread wake-up, about a third of a
  // loopback round trip. An idle or slow-paced daemon never spins.
  const int capacity = static_cast<int>(events.size());
  if (poll_first) {
    const auto until = SteadyClock::now() + options_.busy_poll;
    do {
      const int n = ::epoll_wait(loop.epoll_fd, events.data(), capacity, 0);
      if (n > 0) {
        return n;
      }
      // A runnable thread on this core (the client, on a small machine)
      // goes first: polling must not delay the peer it waits for.
      ::sched_yield();
    } while (running_ && SteadyClock::now() < until);
  }
  const auto wait = std::chrono::duration_cast<Millis>(next_tick - SteadyClock::now());
  return ::epoll_wait(loop.epoll_fd,
                      events.data(),
                      capacity,
                      static_cast<int>(std::max<Millis::rep>(wait.count(), 0)));
}

void
ConnectionHub::tick(Loop& loop, SteadyClock::time_point now) noexcept
{
  using Phase = WsConnection::Phase;
  const auto t = WsConnection::ticks(now);
  std::vector<std::shared_ptr<WsConnection>> hello_expired;
  std::vector<std::shared_ptr<WsConnection>> to_ping;
  std::vector<std::shared_ptr<WsConnection>> idle;
  std::vector<std::pair<std::shared_ptr<WsConnection>, const char*>> to_drop;
  try {
    const std::lock_guard lock(loop.mutex);
    for (const auto& [id, c] : loop.connections) {
      const Phase phase = c->phase_.load();
      if (phase == Phase::closing) {
        if (t - c->closing_since_.load() >= to_ticks(options_.close_linger)) {
          to_drop.emplace_back(c, "close handshake timed out");
        }
        continue;
      }
      if (phase == Phase::awaiting_hello &&
          t - c->opened_at_.load() >= to_ticks(options_.hello_timeout)) {
        hello_expired.push_back(c);
        continue;
      }
      const auto pending = c->ping_pending_.load();
      if (pending != 0) {
        if (t - pending >= to_ticks(options_.ping_timeout)) {
          to_drop.emplace_back(c, "no pong within EXAI_WS_PING_TIMEOUT");
          continue;
        }
      } else if (t - std::max(c->last_rx_.load(), c->last_ping_.load()) >=
                 to_ticks(options_.ping_interval)) {
        to_ping.push_back(c);
      }
      if (phase == Phase::open && t - c->last_message_.load() >= to_ticks(options_.idle_timeout)) {
        idle.push_back(c);
      }
    }
  } catch (const std::bad_alloc&) {
    return; // try again next tick
  }
  for (const auto& c : hello_expired) {
    log_->info("session rejected peer={} reason=\"hello timeout\"", c->peer_ip());
    c->close(protocol::kCloseHelloTimeout, "hello timeout");
  }
  for (const auto& c : to_ping) {
    c->last_ping_ = t;
    c->ping_pending_ = t;
    c->enqueue(kFin | WebSocket::FRAME_OP_PING, std::string(), false);
  }
  for (const auto& c : idle) {
    log_->info("session expired id={} peer={}", c->id(), c->peer_ip());
    c->close(protocol::kCloseNormal, "session idle timeout");
  }
  for (const auto& [c, why] : to_drop) {
    drop(c, why);
  }
  if (&loop == loops_.front().get()) {
    handler_.on_tick(now);
  }
}

void
ConnectionHub::discard_raw(const std::shared_ptr<WsConnection>& connection,
                           Poco::Buffer<char>& buffer)
{
  // After a refused frame the stream is no longer frame-aligned: read and
  // forget bytes until the peer closes or the linger time runs out.
  const auto n = ::recv(connection->fd_, buffer.begin(), buffer.capacity(), MSG_DONTWAIT);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
    drop(connection, "peer closed");
  }
}

void
ConnectionHub::read_one(const std::shared_ptr<WsConnection>& connection, Poco::Buffer<char>& buffer)
{
  if (connection->phase_.load() == WsConnection::Phase::closed) {
    return;
  }
  if (connection->desynced_) {
    discard_raw(connection, buffer);
    return;
  }
  set_reading_connection(connection.get());
  buffer.resize(0);
  int flags = 0;
  int n = 0;
  try {
    n = connection->socket_.receiveFrame(buffer, flags);
  } catch (const Poco::Net::WebSocketException& e) {
    if (e.code() == WebSocket::WS_ERR_PAYLOAD_TOO_BIG) {
      log_->warn("frame refused id={} peer={} reason=\"larger than EXAI_WS_MAX_BYTES={}\"",
                 connection->id(),
                 connection->peer_ip(),
                 options_.max_frame_bytes);
      connection->desynced_ = true;
      connection->close(protocol::kCloseTooBig, "frame exceeds EXAI_WS_MAX_BYTES");
      connection->flush_if_reader();
    } else {
      drop(connection, "malformed frame: " + e.displayText());
    }
    return;
  } catch (const Poco::TimeoutException&) {
    drop(connection, "incomplete frame within the I/O timeout");
    return;
  } catch (const Poco::Exception& e) {
    drop(connection, e.displayText());
    return;
  }
  if (n == 0 && flags == 0) {
    drop(connection, "peer closed");
    return;
  }
  const auto now = WsConnection::ticks(SteadyClock::now());
  connection->last_rx_ = now;
  connection->ping_pending_ = 0;
  const int opcode = flags & WebSocket::FRAME_OP_BITMASK;
  const bool fin = (flags & WebSocket::FRAME_FLAG_FIN) != 0;
  deliver(connection, opcode, fin, std::string_view(buffer.begin(), buffer.size()));
  connection->flush_if_reader();
}

void
ConnectionHub::deliver(const std::shared_ptr<WsConnection>& connection,
                       int opcode,
                       bool fin,
                       std::string_view payload)
{
  const bool closing = connection->closing();
  switch (opcode) {
  case WebSocket::FRAME_OP_CLOSE: {
    if (!closing) {
      // Echo the peer's status code, flush it, then drop.
      std::uint16_t code = protocol::kCloseNormal;
      if (payload.size() >= 2) {
        code = static_cast<std::uint16_t>((static_cast<unsigned char>(payload[0]) << 8U) |
                                          static_cast<unsigned char>(payload[1]));
      }
      connection->close(code, "");
      connection->flush_if_reader();
    }
    drop(connection, "close frame received");
    return;
  }
  case WebSocket::FRAME_OP_PING:
    if (!closing) {
      connection->enqueue(kFin | WebSocket::FRAME_OP_PONG, std::string(payload), false);
    }
    return;
  case WebSocket::FRAME_OP_PONG:
    return;
  case WebSocket::FRAME_OP_TEXT:
  case WebSocket::FRAME_OP_BINARY:
  case WebSocket::FRAME_OP_CONT:
    break;
  default:
    connection->close(protocol::kCloseProtocolError, "unknown opcode");
    return;
  }
  if (closing) {
    return;
  }
  connection->last_message_ = connection->last_rx_.load();
  if (opcode != WebSocket::FRAME_OP_CONT && fin) {
    if (!connection->fragments_.empty()) {
      connection->close(protocol::kCloseProtocolError, "new message inside a fragmented one");
      return;
    }
    handler_.on_message(connection, payload);
    return;
  }
  // Fragmented message (rare): reassemble in a per-connection string.
  if (opcode != WebSocket::FRAME_OP_CONT) {
    if (connection->fragment_opcode_ != 0) {
      connection->close(protocol::kCloseProtocolError, "new message inside a fragmented one");
      return;
    }
    connection->fragment_opcode_ = opcode;
  } else if (connection->fragment_opcode_ == 0) {
    connection->close(protocol::kCloseProtocolError, "continuation without a message");
    return;
  }
  if (connection->fragments_.size() + payload.size() > options_.max_frame_bytes) {
    connection->close(protocol::kCloseTooBig, "message exceeds EXAI_WS_MAX_BYTES");
    return;
  }
  connection->fragments_.append(payload);
  if (fin) {
    std::string message;
    message.swap(connection->fragments_);
    connection->fragment_opcode_ = 0;
    handler_.on_message(connection, message);
  }
}

std::vector<std::shared_ptr<WsConnection>>
ConnectionHub::all_connections()
{
  std::vector<std::shared_ptr<WsConnection>> all;
  for (const auto& loop : loops_) {
    const std::lock_guard lock(loop->mutex);
    for (const auto& [id, c] : loop->connections) {
      all.push_back(c);
    }
  }
  return all;
}

void
ConnectionHub::stop(std::uint16_t code, std::string_view reason, Millis linger) noexcept
{
  {
    const std::lock_guard lock(mutex_);
    if (stopped_) {
      return;
    }
    accepting_ = false;
  }
  try {
    for (const auto& c : all_connections()) {
      c->close(code, reason);
    }
    {
      std::unique_lock lock(mutex_);
      emptied_.wait_for(lock, linger, [this] { return open_ == 0; });
    }
    for (const auto& c : all_connections()) {
      drop(c, "server stopped");
    }
  } catch (const std::bad_alloc&) {
    // Unreachable in practice; the loops stop below and the sockets close
    // with the last references.
  }
  {
    const std::lock_guard lock(mutex_);
    stopped_ = true;
  }
  running_ = false;
  for (const auto& loop : loops_) {
    wake(*loop);
  }
  for (const auto& loop : loops_) {
    if (loop->thread.joinable()) {
      loop->thread.join();
    }
  }
}

std::size_t
ConnectionHub::connection_count() const
{
  const std::lock_guard lock(mutex_);
  return admitted_;
}

} // namespace exai::net
