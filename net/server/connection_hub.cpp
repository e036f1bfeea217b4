#include "net/server/connection_hub.hpp"

#include "net/protocol/op_protocol.hpp"
#include "net/server/http_exchange.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <optional>
#include <system_error>

namespace exai::net {

namespace {

// Accepted per wake-up of the listener; the rest wait for the next round so
// one flood cannot starve the loop's other connections.
constexpr int kAcceptsPerWake = 64;

bool
is_loopback_address(const sockaddr_storage& address)
{
  if (address.ss_family == AF_INET) {
    const auto& v4 = reinterpret_cast<const sockaddr_in&>(address);
    return (ntohl(v4.sin_addr.s_addr) >> 24U) == 127U;
  }
  if (address.ss_family == AF_INET6) {
    const auto& v6 = reinterpret_cast<const sockaddr_in6&>(address);
    if (IN6_IS_ADDR_LOOPBACK(&v6.sin6_addr)) {
      return true;
    }
    return IN6_IS_ADDR_V4MAPPED(&v6.sin6_addr) && v6.sin6_addr.s6_addr[12] == 127;
  }
  return false;
}

std::string
address_text(const sockaddr_storage& address)
{
  std::array<char, INET6_ADDRSTRLEN> text{};
  if (address.ss_family == AF_INET) {
    const auto& v4 = reinterpret_cast<const sockaddr_in&>(address);
    ::inet_ntop(AF_INET, &v4.sin_addr, text.data(), text.size());
  } else if (address.ss_family == AF_INET6) {
    const auto& v6 = reinterpret_cast<const sockaddr_in6&>(address);
    ::inet_ntop(AF_INET6, &v6.sin6_addr, text.data(), text.size());
  }
  return text.data();
}

} // namespace

// The listening socket, owned by loop 0 like a connection: its "input" is
// new connections.
class ConnectionHub::Listener final : public Connection {
public:
  Listener(EventLoop& loop, ConnectionHub& hub, core::UniqueFd fd)
      : Connection(loop, hub, {std::move(fd), hub.next_id_.fetch_add(1), "", true}, OutputLimits{})
      , hub_(hub)
  {
    set_read_events(EPOLLIN);
  }

private:
  void on_readable() override
  {
    for (int i = 0; i < kAcceptsPerWake; ++i) {
      sockaddr_storage address{};
      socklen_t length = sizeof address;
      const int fd = ::accept4(
          this->fd(), reinterpret_cast<sockaddr*>(&address), &length, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) {
          continue;
        }
        if (errno == EMFILE || errno == ENFILE) {
          loop().log()->warn("accept failed: out of descriptors (raise the open-file limit)");
        } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
          drop("listener closed");
        }
        return;
      }
      hub_.accepted(core::UniqueFd(fd), address_text(address), is_loopback_address(address));
    }
  }

  ConnectionHub& hub_;
};

HubOptions
HubOptions::from(const core::DaemonConfig& config)
{
  HubOptions o;
  o.loops = std::max<std::size_t>(config.worker_threads, 1);
  o.busy_poll = config.busy_poll;
  o.max_connections = config.max_connections;
  o.max_connections_per_ip = config.max_connections_per_ip;
  o.max_pending = config.max_pending;
  o.http_threads = config.http_threads;
  o.allowed_origins = config.allowed_origins;
  o.output.bound = config.send_queue_bytes;
  o.output.hard_cap = config.send_queue_bytes * 4 + config.max_bytes;
  o.output.slow_after = config.slow_client_timeout;
  o.ws.max_message_bytes = config.max_bytes;
  o.ws.pending_max_bytes = config.pending_max_bytes;
  o.ws.hello_timeout = config.hello_timeout;
  o.ws.ping_interval = config.ping_interval;
  o.ws.ping_timeout = config.ping_timeout;
  o.ws.idle_timeout = config.session_timeout;
  o.http.max_head_bytes = config.pending_max_bytes;
  o.http.max_body_bytes = config.max_bytes;
  o.http.bodies_max_bytes = config.http_bodies_max_bytes;
  o.http.request_timeout = config.http_request_timeout;
  o.http.keepalive = config.http_keepalive;
  o.transfer_loops = config.upstream_on_loops;
  // As many as the providers' capacity scopes let run at once, as the call
  // threads' pools keep.
  o.transfer_connections = config.kimi_max_inflight + config.glm_max_inflight;
  return o;
}

ConnectionHub::ConnectionHub(HubOptions options,
                             const HttpRouter& router,
                             MessageHandler& ws_handler,
                             std::shared_ptr<spdlog::logger> log)
    : options_(std::move(options))
    , router_(router)
    , ws_handler_(ws_handler)
    , log_(std::move(log))
    , http_params_(new Poco::Net::HTTPServerParams) // Poco's reference-counted pointer owns it
{
  // Per-read bound of the HTTP threads; the loops hold the whole-request
  // deadline on top.
  http_params_->setTimeout(Poco::Timespan(
      std::chrono::duration_cast<std::chrono::microseconds>(options_.http.request_timeout)
          .count()));
  http_params_->setKeepAlive(true);
  http_params_->setServerName("exai");
}

ConnectionHub::~ConnectionHub()
{
  stop(protocol::kCloseGoingAway, "server shutting down", Millis(0));
}

void
ConnectionHub::start(core::UniqueFd listen_fd)
{
  // Timers fire within a quarter of the shortest interval (10 ms .. 250 ms).
  const auto shortest = std::min({options_.ws.hello_timeout,
                                  options_.ws.ping_interval,
                                  options_.ws.ping_timeout,
                                  options_.http.request_timeout});
  const Millis period = std::clamp(shortest / 4, Millis(10), Millis(250));
  for (std::size_t i = 0; i < options_.loops; ++i) {
    std::optional<TransferLoop::Options> transfers;
    if (options_.transfer_loops) {
      transfers.emplace(); // each request names its CA bundle (EXAI_CA_FILE)
      transfers->max_cached = std::max<std::size_t>(options_.transfer_connections, 1);
    }
    loops_.push_back(
        std::make_unique<EventLoop>(i, period, options_.busy_poll, log_, std::move(transfers)));
  }
  http_pool_ = std::make_unique<core::ThreadPool>(options_.http_threads);
  for (const auto& loop : loops_) {
    loop->start([this](EventLoop& l, SteadyClock::time_point now) { tick(l, now); });
  }
  accepting_ = true;
  auto listener = std::make_shared<Listener>(*loops_.front(), *this, std::move(listen_fd));
  listener_ = listener;
  loops_.front()->post([listener] { listener->loop().adopt(listener, listener->read_events()); });
}

void
ConnectionHub::stop_accepting() noexcept
{
  if (!accepting_.exchange(false) || !listener_) {
    return;
  }
  // On the listener's own loop (its descriptor is that thread's): a
  // listening socket that is shut down refuses new connections at once.
  // Until then accepted() closes whatever still arrives.
  listener_->loop().post([listener = listener_] {
    if (!listener->dropped()) {
      ::shutdown(listener->fd(), SHUT_RDWR);
      listener->drop("stopped accepting");
    }
  });
}

EventLoop&
ConnectionHub::next_loop() noexcept
{
  return *loops_.at(next_loop_.fetch_add(1) % loops_.size());
}

ConnectionHub::PeerPlace::~PeerPlace()
{
  if (hub_ != nullptr) {
    const std::lock_guard lock(hub_->mutex_);
    hub_->release_peer(peer_ip_);
  }
}

void
ConnectionHub::release_peer(const std::string& peer_ip)
{
  if (const auto it = per_ip_.find(peer_ip); it != per_ip_.end() && --it->second == 0) {
    per_ip_.erase(it);
  }
}

void
ConnectionHub::adopt(EventLoop& loop, const std::shared_ptr<Connection>& connection)
{
  if (options_.adopt_fault && options_.adopt_fault(*connection)) {
    throw std::system_error(ENOMEM, std::generic_category(), "epoll_ctl(add) (injected)");
  }
  loop.adopt(connection, connection->read_events());
}

void
ConnectionHub::accepted(core::UniqueFd fd, const std::string& peer_ip, bool loopback_peer) noexcept
{
  try {
    if (!accepting_) {
      return; // `fd` closes
    }
    std::shared_ptr<PeerPlace> place;
    if (!loopback_peer) {
      place = std::make_shared<PeerPlace>(peer_ip);
      const std::lock_guard lock(mutex_);
      auto& count = per_ip_[peer_ip];
      if (count >= options_.max_connections_per_ip) {
        ++refused_;
        log_->warn("connection refused peer={} reason=\"too many connections from this address "
                   "(MAX_CONNECTIONS_PER_IP)\"",
                   peer_ip);
        return;
      }
      ++count;
      place->hold(*this);
    }
    const int one = 1;
    ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    EventLoop& loop = next_loop();
    const std::uint64_t id = next_id_.fetch_add(1);
    auto socket = std::make_shared<core::UniqueFd>(std::move(fd));
    // Should the task fail or never run, `place` goes back as it is destroyed.
    loop.post([this, &loop, id, socket, peer_ip, loopback_peer, place] {
      auto connection =
          std::make_shared<HttpConnection>(loop,
                                           *this,
                                           Accepted{std::move(*socket), id, peer_ip, loopback_peer},
                                           options_.output,
                                           options_.http,
                                           SteadyClock::now());
      adopt(loop, connection);
      if (place) {
        place->handed_over();
      }
      make_pending(connection);
      log_->trace("connection opened id={} peer={}", id, peer_ip);
    });
  } catch (const std::exception& e) {
    log_->error("connection admission failed peer={} error=\"{}\"", peer_ip, e.what());
  }
}

std::size_t&
ConnectionHub::established_count(const Connection& connection)
{
  // Greeted WebSockets and HTTP requests in progress have separate bounds,
  // so sessions at MAX_CONNECTIONS never lock out /health or /mcp.
  return dynamic_cast<const WsConnection*>(&connection) != nullptr ? established_ws_
                                                                   : established_http_;
}

void
ConnectionHub::forget_pending(Connection& connection)
{
  if (connection.admission == Connection::Admission::pending) {
    pending_.erase(connection.pending_seq);
  } else if (connection.admission == Connection::Admission::established) {
    --established_count(connection);
  }
  connection.admission = Connection::Admission::none;
}

void
ConnectionHub::make_pending(const std::shared_ptr<Connection>& connection)
{
  std::shared_ptr<Connection> victim;
  {
    const std::lock_guard lock(mutex_);
    forget_pending(*connection);
    connection->admission = Connection::Admission::pending;
    connection->pending_seq = next_seq_++;
    pending_.emplace(connection->pending_seq, connection);
    if (pending_.size() > options_.max_pending) {
      // The oldest unproven connection makes room: a client that talks at
      // once always gets in, whatever idle sockets others hold.
      const auto oldest = pending_.begin();
      victim = oldest->second.lock();
      pending_.erase(oldest);
      ++evicted_;
      if (victim) {
        victim->admission = Connection::Admission::none;
      }
    }
  }
  if (victim) {
    log_->info("connection evicted id={} peer={} reason=\"more than EXAI_WS_MAX_PENDING ({}) "
               "connections awaiting their first request or hello\"",
               victim->id(),
               victim->peer_ip(),
               options_.max_pending);
    if (auto* ws = dynamic_cast<WsConnection*>(victim.get())) {
      ws->close(protocol::kClosePolicy, "too many connections awaiting hello");
    } else {
      victim->drop("evicted");
    }
  }
}

bool
ConnectionHub::establish(Connection& connection)
{
  const std::lock_guard lock(mutex_);
  if (connection.admission == Connection::Admission::established) {
    return true;
  }
  if (established_count(connection) >= options_.max_connections) {
    ++refused_;
    return false;
  }
  forget_pending(connection);
  ++established_count(connection);
  connection.admission = Connection::Admission::established;
  return true;
}

BodyReservation
ConnectionHub::reserve_body(std::size_t bytes)
{
  std::size_t held = body_bytes_.load();
  do {
    if (held + bytes > options_.http.bodies_max_bytes) {
      ++bodies_refused_;
      return {};
    }
  } while (!body_bytes_.compare_exchange_weak(held, held + bytes));
  return {body_bytes_, bytes};
}

void
ConnectionHub::on_connection_dropped(Connection& connection) noexcept
{
  {
    const std::lock_guard lock(mutex_);
    forget_pending(connection);
    if (!connection.loopback_peer()) {
      release_peer(connection.peer_ip());
    }
    if (dynamic_cast<WsConnection*>(&connection) != nullptr) {
      --websockets_; // under the lock: stop() waits for it to reach 0
    }
    flushing_.erase(connection.id()); // stop() waits for this to empty
  }
  changed_.notify_all();
}

void
ConnectionHub::run_on_http_thread(const std::shared_ptr<HttpConnection>& connection,
                                  std::function<ExchangeOutcome()> work)
{
  const bool posted = http_pool_->post([connection, work = std::move(work)] {
    ExchangeOutcome outcome = work();
    connection->loop().post([connection, outcome = std::move(outcome)]() mutable {
      connection->exchange_done(std::move(outcome));
    });
  });
  if (!posted) {
    connection->drop("server stopping");
  }
}

void
ConnectionHub::start_request(const std::shared_ptr<HttpConnection>& connection,
                             std::string bytes,
                             std::size_t head_bytes)
{
  auto request = std::make_shared<std::string>(std::move(bytes));
  run_on_http_thread(connection, [this, connection, request, head_bytes] {
    return run_request(std::move(*request), head_bytes, connection, services());
  });
}

void
ConnectionHub::start_upgrade(const std::shared_ptr<HttpConnection>& connection, int duplicate_fd)
{
  auto fd = std::make_shared<core::UniqueFd>(duplicate_fd);
  run_on_http_thread(connection, [this, connection, fd] {
    // run_upgrade() closes the descriptor it is given.
    return run_upgrade(std::exchange(*fd, core::UniqueFd()).release(), connection, services());
  });
}

ExchangeServices
ConnectionHub::services() const
{
  return ExchangeServices{
      router_, http_params_, options_.loopback_bind, options_.allowed_origins, accepting_, log_};
}

void
ConnectionHub::upgrade(HttpConnection& connection) noexcept
{
  try {
    {
      const std::lock_guard lock(mutex_);
      forget_pending(connection);
    }
    // The HTTP connection's place passes to its WebSocket, or back to the
    // peer if the WebSocket never reaches the loop.
    std::optional<PeerPlace> place;
    if (!connection.loopback_peer()) {
      place.emplace(connection.peer_ip());
      place->hold(*this); // nothing that throws before the socket moves
    }
    EventLoop& loop = connection.loop();
    Accepted socket{connection.release_socket(),
                    next_id_.fetch_add(1),
                    connection.peer_ip(),
                    connection.loopback_peer()};
    auto ws = std::make_shared<WsConnection>(loop,
                                             *this,
                                             std::move(socket),
                                             options_.output,
                                             options_.ws,
                                             ws_handler_,
                                             SteadyClock::now());
    adopt(loop, ws);
    // Counted once adopted: only an adopted WebSocket is ever dropped, and
    // stop() waits for every counted one to be.
    ++websockets_;
    if (place) {
      place->handed_over();
    }
    make_pending(ws);
    log_->debug("websocket opened id={} peer={}", ws->id(), ws->peer_ip());
  } catch (const std::exception& e) {
    log_->error("websocket adoption failed peer={} error=\"{}\"", connection.peer_ip(), e.what());
  }
}

void
ConnectionHub::tick(EventLoop& loop, SteadyClock::time_point now) noexcept
{
  try {
    for (const auto& connection : loop.connections()) {
      connection->on_tick(now);
    }
  } catch (const std::bad_alloc&) {
    return; // next tick
  }
  if (loop.index() == 0) {
    ws_handler_.on_tick(now);
  }
}

HubStats
ConnectionHub::stats() const
{
  HubStats s;
  s.websockets = websockets_.load();
  const std::lock_guard lock(mutex_);
  s.pending = pending_.size();
  s.established = established_ws_ + established_http_;
  s.evicted = evicted_;
  s.body_bytes = body_bytes_.load();
  s.bodies_refused = bodies_refused_.load();
  s.refused = refused_;
  return s;
}

void
ConnectionHub::stop(std::uint16_t code, std::string_view reason, Millis linger) noexcept
{
  {
    const std::lock_guard lock(mutex_);
    if (stopped_) {
      return;
    }
    stopped_ = true;
  }
  stop_accepting();
  const std::string why(reason);
  // Shared: a loop may run this after stop() stopped waiting.
  const auto loops_done = std::make_shared<std::atomic<std::size_t>>(0);
  for (const auto& loop : loops_) {
    loop->post([this, raw = loop.get(), code, why, loops_done] {
      for (const auto& connection : raw->connections()) {
        if (auto* ws = dynamic_cast<WsConnection*>(connection.get())) {
          ws->close(code, why);
        } else if (connection->output_empty()) {
          connection->drop("server stopped");
        } else {
          // An HTTP answer still being sent (e.g. a tool call's last SSE
          // event): sealed, sent within the linger, then closed.
          {
            const std::lock_guard lock(mutex_);
            flushing_.insert(connection->id());
          }
          connection->queue({}, {}, true);
        }
      }
      {
        // Under the lock stop() waits with, or the notification can fall
        // between its check and its sleep, and stop() sleeps the whole linger.
        const std::lock_guard lock(mutex_);
        ++*loops_done;
      }
      changed_.notify_all();
    });
  }
  {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, linger, [&] {
      return loops_done->load() == loops_.size() && websockets_.load() == 0 && flushing_.empty();
    });
  }
  for (const auto& loop : loops_) {
    loop->post([raw = loop.get()] {
      for (const auto& connection : raw->connections()) {
        connection->drop("server stopped");
      }
    });
  }
  for (const auto& loop : loops_) {
    loop->stop();
  }
  http_pool_.reset(); // the sockets are shut down: exchanges end at once
  listener_.reset();
}

} // namespace exai::net
