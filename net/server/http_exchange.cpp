#include "net/server/http_exchange.hpp"

#include "core/util/text.hpp"
#include "net/http/memory_exchange.hpp"
#include "net/http/request_head.hpp"
#include "net/http/response_stream.hpp"
#include "net/server/auth.hpp"

#include <Poco/Exception.h>
#include <Poco/Net/HTTPServerRequestImpl.h>
#include <Poco/Net/HTTPServerResponseImpl.h>
#include <Poco/Net/HTTPServerSession.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/Net/StreamSocketImpl.h>
#include <Poco/Net/WebSocket.h>
#include <Poco/Timestamp.h>

#include <unistd.h>

namespace exai::net {

namespace {

using Poco::Net::HTTPResponse;

// Host and Origin rules of every route and upgrade (SPEC §8). Empty when the
// request may proceed, else why not.
std::string
refusal(const Poco::Net::HTTPRequest& request, const ExchangeServices& services)
{
  if (services.loopback_bind && request.has("Host") && !loopback_host_header(request.get("Host"))) {
    return "Host must name a loopback address (the daemon is bound to loopback)";
  }
  if (request.has("Origin") && !origin_allowed(request.get("Origin"), services.allowed_origins)) {
    return "Origin not allowed (see EXAI_ALLOWED_ORIGINS)";
  }
  return {};
}

void
log_refusal(const ExchangeServices& services,
            const Connection& connection,
            const Poco::Net::HTTPRequest& request,
            const std::string& why)
{
  services.log->warn("http request refused peer={} uri=\"{}\" reason=\"{}\"",
                     connection.peer_ip(),
                     core::printable(request.getURI(), 200),
                     why);
}

} // namespace

ExchangeOutcome
run_request(std::string bytes,
            std::size_t head_bytes,
            const std::shared_ptr<Connection>& connection,
            const ExchangeServices& services) noexcept
{
  ExchangeOutcome outcome;
  try {
    http::MemoryResponse response;
    http::MemoryRequest request(bytes,
                                head_bytes,
                                Poco::Net::SocketAddress(connection->peer_ip(), 0),
                                Poco::Net::SocketAddress(),
                                *services.params,
                                response);
    bytes.clear();
    response.setDate(Poco::Timestamp());
    response.setVersion(request.getVersion());
    response.setKeepAlive(request.getKeepAlive());
    response.set("Server", "exai");
    std::shared_ptr<ResponseStream> stream;
    if (const std::string why = refusal(request, services); !why.empty()) {
      log_refusal(services, *connection, request, why);
      HttpRouter::send_refusal(
          request.getURI(), response, HTTPResponse::HTTP_FORBIDDEN, "FORBIDDEN", why);
    } else {
      HttpExchange exchange(request, response, connection->peer_ip(), [&] {
        // The head leaves now; the body follows through the stream, written
        // by the connection's event loop.
        connection->queue(response.stream_head());
        stream = std::make_shared<ResponseStream>(connection);
        return stream;
      });
      try {
        services.router.dispatch(exchange);
      } catch (const std::exception& e) {
        services.log->error("http request failed method={} uri=\"{}\" error=\"{}\"",
                            request.getMethod(),
                            core::printable(request.getURI(), 200),
                            e.what());
        if (!exchange.streaming()) {
          response.setKeepAlive(false);
          HttpRouter::send_error(response,
                                 HTTPResponse::HTTP_INTERNAL_SERVER_ERROR,
                                 "INTERNAL_ERROR",
                                 "internal error");
        }
      }
      if (exchange.streaming()) {
        outcome.kind = ExchangeOutcome::Kind::stream;
        outcome.stream = stream;
        return outcome;
      }
    }
    if (!response.sent()) {
      response.setKeepAlive(false);
      HttpRouter::send_error(
          response, HTTPResponse::HTTP_INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", "no response");
    }
    const bool keep_alive = response.getKeepAlive();
    const bool head_request = request.getMethod() == Poco::Net::HTTPRequest::HTTP_HEAD;
    if (connection->queue(response.serialize(head_request)) && keep_alive) {
      outcome.kind = ExchangeOutcome::Kind::keep_alive;
    }
  } catch (const Poco::Exception& e) {
    connection->queue(
        http::error_response(HTTPResponse::HTTP_BAD_REQUEST, "BAD_REQUEST", e.displayText()));
  } catch (const std::exception& e) {
    services.log->error(
        "http exchange failed peer={} error=\"{}\"", connection->peer_ip(), e.what());
  }
  return outcome;
}

ExchangeOutcome
run_upgrade(int socket_fd,
            const std::shared_ptr<Connection>& connection,
            const ExchangeServices& services) noexcept
{
  ExchangeOutcome outcome;
  Poco::Net::StreamSocket socket;
  try {
    // Poco takes ownership of the duplicate and closes it with `socket`.
    socket = Poco::Net::StreamSocket(new Poco::Net::StreamSocketImpl(socket_fd));
  } catch (const std::exception&) {
    ::close(socket_fd);
    return outcome;
  }
  Poco::Net::HTTPServerSession session(socket, services.params);
  try {
    Poco::Net::HTTPServerResponseImpl response(session);
    // Poco only reads the parameters it is given.
    Poco::Net::HTTPServerRequestImpl request(
        response, session, const_cast<Poco::Net::HTTPServerParams*>(services.params.get()));
    response.setDate(Poco::Timestamp());
    response.setVersion(request.getVersion());
    response.setKeepAlive(false);
    response.set("Server", "exai");
    if (const std::string why = refusal(request, services); !why.empty()) {
      log_refusal(services, *connection, request, why);
      HttpRouter::send_refusal(
          request.getURI(), response, HTTPResponse::HTTP_FORBIDDEN, "FORBIDDEN", why);
      return outcome;
    }
    if (!services.accepting) {
      HttpRouter::send_error(response,
                             HTTPResponse::HTTP_SERVICE_UNAVAILABLE,
                             "SHUTTING_DOWN",
                             "server shutting down");
      return outcome;
    }
    try {
      // Poco validates the handshake and sends 101; the socket is the event
      // loop's from here (our own RFC 6455 codec).
      const Poco::Net::WebSocket upgraded(request, response);
      outcome.kind = ExchangeOutcome::Kind::upgrade;
    } catch (const Poco::Net::WebSocketException& e) {
      services.log->debug(
          "upgrade failed peer={} error=\"{}\"", connection->peer_ip(), e.displayText());
      if (!response.sent()) {
        HttpRouter::send_error(response,
                               HTTPResponse::HTTP_BAD_REQUEST,
                               "BAD_REQUEST",
                               "invalid WebSocket handshake: " + e.displayText());
      }
    }
  } catch (const std::exception& e) {
    services.log->debug("upgrade failed peer={} error=\"{}\"", connection->peer_ip(), e.what());
  }
  return outcome;
}

} // namespace exai::net
