#include "net/server/http_exchange.hpp"

#include "core/util/text.hpp"
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

#include <istream>
#include <limits>

namespace exai::net {

namespace {

using Poco::Net::HTTPResponse;

// Exposes whether Poco read past the request (a pipelined next request):
// those bytes live in Poco's buffer, so the connection cannot continue.
class ExchangeSession final : public Poco::Net::HTTPServerSession {
public:
  using HTTPServerSession::HTTPServerSession;
  bool read_ahead() const { return buffered() > 0; }
};

bool
is_upgrade(const Poco::Net::HTTPServerRequest& request)
{
  // A copy: get() with a default returns a reference that may be the default.
  const std::string upgrade = request.get("Upgrade", std::string());
  return Poco::icompare(upgrade, "websocket") == 0;
}

// Host and Origin rules of every route and upgrade (SPEC §8). Empty when the
// request may proceed, else why not.
std::string
refusal(const Poco::Net::HTTPServerRequest& request, const ExchangeServices& services)
{
  if (services.loopback_bind && request.has("Host") && !loopback_host_header(request.get("Host"))) {
    return "Host must name a loopback address (the daemon is bound to loopback)";
  }
  if (request.has("Origin") && !origin_allowed(request.get("Origin"), services.allowed_origins)) {
    return "Origin not allowed (see EXAI_ALLOWED_ORIGINS)";
  }
  return {};
}

// Reads what the handler left of the body, so the next request starts clean.
// False when that is not possible (no length, or longer than allowed).
bool
drain_body(Poco::Net::HTTPServerRequest& request, std::size_t max_bytes)
{
  if (!request.getChunkedTransferEncoding() && !request.hasContentLength()) {
    const std::string& method = request.getMethod();
    return method == "GET" || method == "HEAD" || method == "DELETE" || method == "OPTIONS";
  }
  if (request.hasContentLength() &&
      request.getContentLength64() > static_cast<Poco::Int64>(max_bytes)) {
    return false;
  }
  std::istream& in = request.stream();
  in.ignore(std::numeric_limits<std::streamsize>::max());
  return in.eof();
}

} // namespace

ExchangeOutcome
run_exchange(int socket_fd,
             const std::shared_ptr<Connection>& connection,
             bool continue_sent,
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
  ExchangeSession session(socket, services.params);
  try {
    Poco::Net::HTTPServerResponseImpl response(session);
    Poco::Net::HTTPServerRequestImpl request(
        response,
        session,
        const_cast<Poco::Net::HTTPServerParams*>(services.params.get())); // Poco only reads it
    response.setDate(Poco::Timestamp());
    response.setVersion(request.getVersion());
    response.setKeepAlive(services.params->getKeepAlive() && request.getKeepAlive() &&
                          session.canKeepAlive());
    response.set("Server", "exai");
    if (request.getExpectContinue() && !continue_sent) {
      response.sendContinue();
    }
    if (const std::string why = refusal(request, services); !why.empty()) {
      services.log->warn("http request refused peer={} uri=\"{}\" reason=\"{}\"",
                         connection->peer_ip(),
                         core::printable(request.getURI(), 200),
                         why);
      HttpRouter::send_error(response, HTTPResponse::HTTP_FORBIDDEN, "FORBIDDEN", why);
    } else if (is_upgrade(request)) {
      if (!services.accepting) {
        HttpRouter::send_error(response,
                               HTTPResponse::HTTP_SERVICE_UNAVAILABLE,
                               "SHUTTING_DOWN",
                               "server shutting down");
      } else {
        try {
          // Poco validates the handshake and sends 101; the socket is the
          // event loop's from here (our own RFC 6455 codec).
          const Poco::Net::WebSocket upgraded(request, response);
          outcome.kind = ExchangeOutcome::Kind::upgrade;
          return outcome;
        } catch (const Poco::Net::WebSocketException& e) {
          services.log->debug(
              "upgrade failed peer={} error=\"{}\"", connection->peer_ip(), e.displayText());
          if (!response.sent()) {
            response.setKeepAlive(false);
            HttpRouter::send_error(response,
                                   HTTPResponse::HTTP_BAD_REQUEST,
                                   "BAD_REQUEST",
                                   "invalid WebSocket handshake");
          }
          return outcome;
        }
      }
    } else {
      std::shared_ptr<ResponseStream> stream;
      Poco::Net::StreamSocket detached;
      HttpExchange exchange(request, response, connection->peer_ip(), [&] {
        // The head goes out now, on this thread; the body from the loop.
        response.setKeepAlive(false);
        response.setChunkedTransferEncoding(false);
        response.send().flush();
        // Out of Poco's hands: ending its session must not shut the socket
        // down (it would for a response without keep-alive).
        detached = request.detachSocket();
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
        if (!response.sent()) {
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
      return outcome;
    }
    // A refused request whose body was never read must not poison the next
    // request on this connection: read the rest, or close.
    if (response.getKeepAlive() && drain_body(request, services.max_body_bytes) &&
        !session.read_ahead()) {
      outcome.kind = ExchangeOutcome::Kind::keep_alive;
    }
  } catch (const Poco::Net::NoMessageException&) {
    // The peer closed before a request: nothing to answer.
  } catch (const Poco::Net::MessageException& e) {
    try {
      Poco::Net::HTTPServerResponseImpl response(session);
      response.setVersion(Poco::Net::HTTPMessage::HTTP_1_1);
      response.setKeepAlive(false);
      HttpRouter::send_error(
          response, HTTPResponse::HTTP_BAD_REQUEST, "BAD_REQUEST", e.displayText());
    } catch (const std::exception&) {
      // The peer is gone; the connection closes.
    }
  } catch (const std::exception& e) {
    services.log->debug(
        "http exchange failed peer={} error=\"{}\"", connection->peer_ip(), e.what());
  }
  return outcome;
}

} // namespace exai::net
