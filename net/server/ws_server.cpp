#include "net/server/ws_server.hpp"

#include "core/error.hpp"
#include "net/protocol/op_protocol.hpp"

#include <Poco/Exception.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>

#include <fcntl.h>
#include <unistd.h>

namespace exai::net {

namespace {

constexpr int kListenBacklog = 4096;

} // namespace

void
require_safe_bind(const core::DaemonConfig& config)
{
  if (config.token.empty() && !is_loopback_host(config.host)) {
    throw core::Error(core::Errc::config_invalid,
                      "invalid EXAI_WS_HOST='" + config.host +
                          "': a non-loopback address needs EXAI_WS_TOKEN (at least 16 "
                          "characters); or bind 127.0.0.1, ::1 or localhost");
  }
}

WsServer::WsServer(const core::DaemonConfig& config,
                   core::CallEngine& engine,
                   HealthFn health,
                   std::shared_ptr<spdlog::logger> log)
    : config_(config)
    , log_(std::move(log))
    , tokens_(config.token)
    , sessions_(config.session_timeout)
    , dispatcher_(engine, tokens_, sessions_, std::move(health), log_)
    , hub_(
          [&] {
            HubOptions options = HubOptions::from(config);
            options.loopback_bind = is_loopback_host(config.host);
            return options;
          }(),
          router_,
          dispatcher_,
          log_)
{
  require_safe_bind(config);
  Poco::Net::SocketAddress address;
  try {
    address = Poco::Net::SocketAddress(config.host, config.port);
  } catch (const Poco::Exception& e) {
    throw core::Error(core::Errc::config_invalid,
                      "invalid EXAI_WS_HOST='" + config.host + "': " + e.displayText() +
                          "; expected an IP address or a resolvable host name");
  }
  Poco::Net::ServerSocket socket;
  try {
    // SO_REUSEADDR for quick restarts, but not SO_REUSEPORT: a second daemon
    // on the same port must fail, not share it.
    socket.bind(address, true, false);
    socket.listen(kListenBacklog);
  } catch (const Poco::Exception& e) {
    throw BindError("cannot listen on " + address.toString() + ": " + e.displayText());
  }
  port_ = socket.address().port();
  // The hub's loop owns a duplicate; Poco's socket closes its own with it.
  const int fd = ::fcntl(socket.impl()->sockfd(), F_DUPFD_CLOEXEC, 0);
  if (fd < 0) {
    throw BindError("cannot listen on " + address.toString() + ": out of descriptors");
  }
  listen_fd_ = core::UniqueFd(fd);
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
}

WsServer::~WsServer()
{
  stop(Millis(0));
}

void
WsServer::start()
{
  hub_.start(std::move(listen_fd_));
}

void
WsServer::stop_accepting() noexcept
{
  hub_.stop_accepting();
}

void
WsServer::stop(Millis linger) noexcept
{
  hub_.stop(protocol::kCloseGoingAway, "server shutting down", linger);
}

} // namespace exai::net
