#pragma once

// ConnectionHub: every socket of the daemon's port, without a thread per
// connection. A few event loops (EXAI_WORKER_THREADS) each own a share of
// the connections; loop 0 also owns the listening socket and accepts. A new
// connection is HTTP until its request is a WebSocket upgrade.
//
// Admission (who may take the daemon's places):
//  - pending: connections that have not proven themselves yet — an HTTP
//    connection waiting for (its next) complete request, a WebSocket before
//    hello. At most EXAI_WS_MAX_PENDING; a newcomer beyond that evicts the
//    oldest pending connection, so idle or trickling sockets can never lock
//    out a client that talks at once.
//  - established: a greeted WebSocket (at most MAX_CONNECTIONS), an HTTP
//    request being answered or streaming (at most MAX_CONNECTIONS too, counted
//    apart, so sessions at their limit never lock out /health or /mcp).
//  - MAX_CONNECTIONS_PER_IP applies to remote peers; every loopback address
//    is the one local peer, bounded by the limits above.
//
// Threads: the loops, plus EXAI_HTTP_THREADS that answer complete HTTP
// requests (Poco parses them and runs the handlers; a handler that answers
// later hands its body back to the loop as a ResponseStream).

#include "core/config/config.hpp"
#include "core/util/thread_pool.hpp"
#include "net/http/http_router.hpp"
#include "net/server/body_reservation.hpp"
#include "net/server/connection.hpp"
#include "net/server/event_loop.hpp"
#include "net/server/http_connection.hpp"
#include "net/server/http_exchange.hpp"
#include "net/ws/ws_connection.hpp"

#include <Poco/Net/HTTPServerParams.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

namespace exai::net {

// Built only by from(): the configuration layer owns every default, so a
// test that builds options from core::DaemonConfig{} runs the production
// daemon's limits.
struct HubOptions {
  std::size_t loops = 0;
  std::chrono::microseconds busy_poll{0};
  std::size_t max_connections = 0;
  std::size_t max_connections_per_ip = 0;
  std::size_t max_pending = 0;
  std::size_t http_threads = 0;
  bool loopback_bind = true; // Host headers must name loopback (DNS rebinding)
  std::vector<std::string> allowed_origins;
  OutputLimits output;
  WsOptions ws;
  HttpOptions http;
  // Each loop nests a transfer loop for model calls (EXAI_UPSTREAM_ON_LOOPS).
  bool transfer_loops = true;
  std::size_t transfer_connections = 16; // kept-alive upstream connections per transfer loop
  // Tests only: adopting a connection for which this returns true fails as a
  // failed epoll_ctl would, after the admission steps before it were taken.
  std::function<bool(const Connection&)> adopt_fault;

  // Every value from the configuration.
  static HubOptions from(const core::DaemonConfig& config);
};

// Counts for health and metrics.
struct HubStats {
  std::size_t websockets = 0;       // WebSocket connections (greeted or not)
  std::size_t pending = 0;          // connections not yet proven (see above)
  std::size_t established = 0;      // greeted WebSockets + HTTP requests in progress
  std::uint64_t evicted = 0;        // pending connections closed to make room
  std::uint64_t refused = 0;        // connections refused by MAX_CONNECTIONS(_PER_IP)
  std::size_t body_bytes = 0;       // large request bodies being received (reserved)
  std::uint64_t bodies_refused = 0; // requests refused by EXAI_HTTP_BODIES_MAX_BYTES
};

class ConnectionHub final : public ConnectionObserver {
public:
  // `router` answers plain HTTP; `ws_handler` gets WebSocket messages. Both
  // must outlive the hub.
  ConnectionHub(HubOptions options,
                const HttpRouter& router,
                MessageHandler& ws_handler,
                std::shared_ptr<spdlog::logger> log);
  ConnectionHub(const ConnectionHub&) = delete;
  ConnectionHub& operator=(const ConnectionHub&) = delete;
  ~ConnectionHub() override;

  // Starts the loops and accepts on `listen_fd` (bound and listening).
  // Throws std::system_error when a loop cannot be created.
  void start(core::UniqueFd listen_fd);

  // Closes the listening socket: new TCP connections are refused at once and
  // WebSocket upgrades get 503; open connections keep working. Idempotent.
  void stop_accepting() noexcept;

  // Closes every WebSocket with `code`/`reason`, waits up to `linger` for the
  // close handshakes, drops everything else and joins all threads. Idempotent.
  void stop(std::uint16_t code, std::string_view reason, Millis linger) noexcept;

  HubStats stats() const;

  // --- for the connections (their loop thread) ---
  void on_connection_dropped(Connection& connection) noexcept override;
  // Counts `connection` as pending (evicting the oldest beyond the bound).
  void make_pending(const std::shared_ptr<Connection>& connection);
  // Counts it as established; false (nothing changed) when MAX_CONNECTIONS
  // are established already.
  bool establish(Connection& connection) override;
  // `bytes` of EXAI_HTTP_BODIES_MAX_BYTES for a body about to be received;
  // empty (and counted as refused) when they do not fit.
  BodyReservation reserve_body(std::size_t bytes);
  // Answers the complete request `bytes` of `connection` on an HTTP thread.
  void start_request(const std::shared_ptr<HttpConnection>& connection,
                     std::string bytes,
                     std::size_t head_bytes);
  // Performs the upgrade waiting on `duplicate_fd` (a blocking duplicate of
  // the connection's socket, closed when done) on an HTTP thread.
  void start_upgrade(const std::shared_ptr<HttpConnection>& connection, int duplicate_fd);
  // The request was a WebSocket upgrade that succeeded: the socket becomes a
  // WebSocket of the same loop.
  void upgrade(HttpConnection& connection) noexcept;
  // A new TCP connection from the listener (loop 0).
  void accepted(core::UniqueFd fd, const std::string& peer_ip, bool loopback_peer) noexcept;

  const HubOptions& options() const noexcept { return options_; }
  bool accepting() const noexcept { return accepting_.load(); }

private:
  class Listener;
  // A remote peer's MAX_CONNECTIONS_PER_IP place while no adopted connection
  // holds it (on its way to a loop, or from an HTTP connection to its
  // WebSocket): given back when it is dropped before handed_over(), so a
  // connection that never reached its loop (a failed epoll_ctl, an
  // allocation) does not keep its peer's place for good. Once handed over,
  // the connection's drop gives the place back (on_connection_dropped).
  class PeerPlace {
  public:
    explicit PeerPlace(std::string peer_ip) noexcept
        : peer_ip_(std::move(peer_ip))
    {
    }
    PeerPlace(const PeerPlace&) = delete;
    PeerPlace& operator=(const PeerPlace&) = delete;
    ~PeerPlace();
    // The place is taken (counted in `hub`): from now on it goes back at
    // destruction unless handed over.
    void hold(ConnectionHub& hub) noexcept { hub_ = &hub; }
    void handed_over() noexcept { hub_ = nullptr; }

  private:
    ConnectionHub* hub_ = nullptr;
    std::string peer_ip_;
  };
  void release_peer(const std::string& peer_ip); // mutex_ held
  // loop.adopt(), or the failure options_.adopt_fault asks for. Loop thread.
  void adopt(EventLoop& loop, const std::shared_ptr<Connection>& connection);
  void tick(EventLoop& loop, SteadyClock::time_point now) noexcept;
  void run_on_http_thread(const std::shared_ptr<HttpConnection>& connection,
                          std::function<ExchangeOutcome()> work);
  ExchangeServices services() const;
  EventLoop& next_loop() noexcept;
  void forget_pending(Connection& connection);                  // mutex_ held
  std::size_t& established_count(const Connection& connection); // mutex_ held

  const HubOptions options_;
  const HttpRouter& router_;
  MessageHandler& ws_handler_;
  const std::shared_ptr<spdlog::logger> log_;
  Poco::Net::HTTPServerParams::Ptr http_params_;
  // Declared before the loops: their connections give reservations back.
  std::atomic<std::size_t> body_bytes_{0};
  std::atomic<std::uint64_t> bodies_refused_{0};
  std::vector<std::unique_ptr<EventLoop>> loops_;
  std::shared_ptr<Connection> listener_; // owned by loop 0 once started
  std::unique_ptr<core::ThreadPool> http_pool_;
  std::atomic<std::uint64_t> next_id_{1};
  std::atomic<std::size_t> next_loop_{0};
  std::atomic<bool> accepting_{false};
  std::atomic<std::size_t> websockets_{0};
  std::set<std::uint64_t> flushing_; // guarded by mutex_: HTTP answers stop() lets finish

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::map<std::uint64_t, std::weak_ptr<Connection>> pending_; // guarded; by pending_seq
  std::uint64_t next_seq_ = 1;                                 // guarded by mutex_
  std::size_t established_ws_ = 0;   // guarded by mutex_: greeted WebSockets
  std::size_t established_http_ = 0; // guarded by mutex_: HTTP requests in progress
  std::unordered_map<std::string, std::size_t> per_ip_; // guarded: remote peers only
  std::uint64_t evicted_ = 0;                           // guarded by mutex_
  std::uint64_t refused_ = 0;                           // guarded by mutex_
  bool stopped_ = false;                                // guarded by mutex_
};

} // namespace exai::net
