#pragma once

// Plain HTTP on the daemon's port: method + exact path -> handler. Other
// components register their endpoints (GET /health, GET /metrics, /mcp)
// before the server starts; everything else answers 404 (405 for a known path
// with another method) with a JSON body.

#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>

namespace exai::net {

class HttpRouter {
public:
  // Runs on a Poco HTTP server thread; may throw (answered with 500).
  using Handler =
      std::function<void(Poco::Net::HTTPServerRequest&, Poco::Net::HTTPServerResponse&)>;

  // Registers `handler` for `method` (e.g. "GET") on `path` (exact match, no
  // query string). A later registration for the same pair replaces the
  // earlier one. Not thread-safe: register before WsServer::start().
  void add(std::string method, std::string path, Handler handler);

  // Answers `request` with the matching handler, or 404/405 JSON.
  void dispatch(Poco::Net::HTTPServerRequest& request,
                Poco::Net::HTTPServerResponse& response) const;

  // Sends `body` (a JSON text) with `status`. For handlers and the router.
  static void send_json(Poco::Net::HTTPServerResponse& response,
                        Poco::Net::HTTPResponse::HTTPStatus status,
                        const std::string& body);

  // {"error":{"code":C,"message":M}} with `status`.
  static void send_error(Poco::Net::HTTPServerResponse& response,
                         Poco::Net::HTTPResponse::HTTPStatus status,
                         std::string_view code,
                         std::string_view message);

private:
  std::map<std::pair<std::string, std::string>, Handler> routes_; // (path, method)
};

} // namespace exai::net
