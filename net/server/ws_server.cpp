#include "net/server/ws_server.hpp"

#include "core/error.hpp"
#include "net/protocol/op_protocol.hpp"

#include <Poco/Exception.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/Net/WebSocket.h>

#include <algorithm>

namespace exai::net {

namespace {

// Threads for handshakes and plain HTTP besides those /mcp tool calls may
// hold, so /health and new connections are served while /mcp calls run.
constexpr int kHttpThreads = 4;

int
http_threads(const core::DaemonConfig& config)
{
  return kHttpThreads + static_cast<int>(config.mcp_http_max_calls);
}
constexpr int kListenBacklog = 4096;
constexpr int kMaxQueuedAccepts = 16384;

bool
is_upgrade(const Poco::Net::HTTPServerRequest& request)
{
  // A copy: get() with a default returns a reference that may be the default.
  const std::string upgrade = request.get("Upgrade", std::string());
  return Poco::icompare(upgrade, "websocket") == 0;
}

// Upgrades one request and gives the socket to the hub.
class UpgradeHandler final : public Poco::Net::HTTPRequestHandler {
public:
  UpgradeHandler(ConnectionHub& hub,
                 const std::vector<std::string>& allowed_origins,
                 const std::atomic<bool>& accepting,
                 spdlog::logger& log)
      : hub_(hub)
      , allowed_origins_(allowed_origins)
      , accepting_(accepting)
      , log_(log)
  {
  }

  void handleRequest(Poco::Net::HTTPServerRequest& request,
                     Poco::Net::HTTPServerResponse& response) override
  {
    const std::string peer = request.clientAddress().host().toString();
    if (request.has("Origin") && !origin_allowed(request.get("Origin"), allowed_origins_)) {
      log_.warn("upgrade refused peer={} reason=\"foreign origin\" origin=\"{}\"",
                peer,
                request.get("Origin"));
      HttpRouter::send_error(response,
                             Poco::Net::HTTPResponse::HTTP_FORBIDDEN,
                             "FORBIDDEN",
                             "Origin not allowed (see EXAI_ALLOWED_ORIGINS)");
      return;
    }
    if (!accepting_) {
      HttpRouter::send_error(response,
                             Poco::Net::HTTPResponse::HTTP_SERVICE_UNAVAILABLE,
                             "SHUTTING_DOWN",
                             "server shutting down");
      return;
    }
    try {
      // Poco 1.11: the socket stays open after handleRequest returns; the
      // hub owns it from here on.
      Poco::Net::WebSocket socket(request, response);
      hub_.admit(std::move(socket), peer);
    } catch (const Poco::Net::WebSocketException& e) {
      log_.debug("upgrade failed peer={} error=\"{}\"", peer, e.displayText());
      if (!response.sent()) {
        HttpRouter::send_error(response,
                               Poco::Net::HTTPResponse::HTTP_BAD_REQUEST,
                               "BAD_REQUEST",
                               "invalid WebSocket handshake");
      }
    }
  }

private:
  ConnectionHub& hub_;
  const std::vector<std::string>& allowed_origins_;
  const std::atomic<bool>& accepting_;
  spdlog::logger& log_;
};

class RouteHandler final : public Poco::Net::HTTPRequestHandler {
public:
  RouteHandler(const HttpRouter& router, spdlog::logger& log)
      : router_(router)
      , log_(log)
  {
  }

  void handleRequest(Poco::Net::HTTPServerRequest& request,
                     Poco::Net::HTTPServerResponse& response) override
  {
    try {
      router_.dispatch(request, response);
    } catch (const std::exception& e) {
      log_.error("http request failed method={} uri=\"{}\" error=\"{}\"",
                 request.getMethod(),
                 request.getURI(),
                 e.what());
      if (!response.sent()) {
        HttpRouter::send_error(response,
                               Poco::Net::HTTPResponse::HTTP_INTERNAL_SERVER_ERROR,
                               "INTERNAL_ERROR",
                               "internal error");
      }
    }
  }

private:
  const HttpRouter& router_;
  spdlog::logger& log_;
};

} // namespace

class WsServer::HandlerFactory final : public Poco::Net::HTTPRequestHandlerFactory {
public:
  explicit HandlerFactory(WsServer& server)
      : server_(server)
  {
  }

  Poco::Net::HTTPRequestHandler*
  createRequestHandler(const Poco::Net::HTTPServerRequest& request) override
  {
    // Poco takes ownership of the handler.
    if (is_upgrade(request)) {
      return new UpgradeHandler(
          server_.hub_, server_.config_.allowed_origins, server_.accepting_, *server_.log_);
    }
    return new RouteHandler(server_.router_, *server_.log_);
  }

private:
  WsServer& server_;
};

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
    , hub_(HubOptions::from(config), dispatcher_, log_)
    , http_pool_("exai-http", 1, http_threads(config))
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
  listen_socket_ = socket;
  auto* params = new Poco::Net::HTTPServerParams; // Poco takes ownership
  params->setMaxThreads(http_threads(config_));
  params->setMaxQueued(kMaxQueuedAccepts);
  params->setKeepAlive(true);
  params->setKeepAliveTimeout(Poco::Timespan(5, 0));
  params->setTimeout(Poco::Timespan(10, 0));
  server_ = std::make_unique<Poco::Net::HTTPServer>(
      new HandlerFactory(*this), http_pool_, socket, params); // Poco takes ownership
}

WsServer::~WsServer()
{
  stop(Millis(0));
}

void
WsServer::start()
{
  hub_.start();
  accepting_ = true;
  server_->start();
}

void
WsServer::stop_accepting() noexcept
{
  accepting_ = false;
  try {
    server_->stop();
    // Refuse new TCP connections at once instead of leaving them in the backlog.
    listen_socket_.close();
  } catch (const std::exception& e) {
    log_->error("stopping the listener failed error=\"{}\"", e.what());
  }
}

void
WsServer::stop(Millis linger) noexcept
{
  stop_accepting();
  hub_.stop(protocol::kCloseGoingAway, "server shutting down", linger);
  try {
    server_->stopAll(true);
    http_pool_.joinAll();
  } catch (const std::exception& e) {
    log_->error("stopping the HTTP server failed error=\"{}\"", e.what());
  }
}

std::size_t
WsServer::max_thread_count() const noexcept
{
  return static_cast<std::size_t>(http_threads(config_)) + 1 + hub_.thread_count();
}

} // namespace exai::net
