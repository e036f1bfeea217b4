#pragma once

// WsServer: the daemon's listening port. One TCP port carries WebSocket
// upgrades on any path (the op protocol), plain HTTP routes (/health,
// /metrics, /mcp) and nothing else; all of it runs on the ConnectionHub's
// event loops, with complete HTTP requests answered on a few HTTP threads.

#include "core/calls/call_engine.hpp"
#include "core/config/config.hpp"
#include "net/http/http_router.hpp"
#include "net/server/auth.hpp"
#include "net/server/connection_hub.hpp"
#include "net/ws/op_dispatcher.hpp"
#include "net/ws/session_registry.hpp"

#include <spdlog/spdlog.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>

namespace exai::net {

// The listen address could not be bound (port in use, no permission).
// `exai serve` maps it to exit code 69.
class BindError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

// Throws core::Error(config_invalid) when `config` binds a non-loopback
// address without EXAI_WS_TOKEN (SPEC §8).
void require_safe_bind(const core::DaemonConfig& config);

class WsServer {
public:
  using HealthFn = std::function<nlohmann::json()>;

  // Binds config.host:config.port (port 0 = an ephemeral port; see port())
  // and listens, but serves nothing until start(). Throws
  // core::Error(config_invalid) for an unusable host or a non-loopback host
  // without a token, BindError when the address cannot be bound.
  // `engine` must outlive the server; `health` runs on event loops.
  WsServer(const core::DaemonConfig& config,
           core::CallEngine& engine,
           HealthFn health,
           std::shared_ptr<spdlog::logger> log);
  WsServer(const WsServer&) = delete;
  WsServer& operator=(const WsServer&) = delete;
  ~WsServer();

  // Plain HTTP routes. Register before start().
  HttpRouter& router() noexcept { return router_; }

  // The shared token (also for `Authorization: Bearer` checks on HTTP).
  TokenStore& tokens() noexcept { return tokens_; }

  // The bound port (the real one when configured as 0).
  std::uint16_t port() const noexcept { return port_; }

  // Starts accepting connections.
  void start();

  // Stops accepting new TCP connections and upgrades; open connections keep
  // working (so in-flight calls can still deliver results). Idempotent.
  void stop_accepting() noexcept;

  // Closes every WebSocket with 1001, waits up to `linger` for the close
  // handshakes and stops all threads. Idempotent.
  void stop(Millis linger = Millis(2000)) noexcept;

  // Open WebSocket connections.
  std::size_t connection_count() const { return hub_.stats().websockets; }
  HubStats hub_stats() const { return hub_.stats(); }

  // Sessions known: attached to a connection or still resumable.
  std::size_t session_count() const { return sessions_.size(); }

  // Sessions with at least one open connection.
  std::size_t attached_session_count() const { return sessions_.attached(); }

private:
  const core::DaemonConfig config_;
  std::shared_ptr<spdlog::logger> log_;
  HttpRouter router_;
  TokenStore tokens_;
  SessionRegistry sessions_;
  OpDispatcher dispatcher_;
  ConnectionHub hub_;
  core::UniqueFd listen_fd_;
  std::uint16_t port_ = 0;
};

} // namespace exai::net
