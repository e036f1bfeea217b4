#pragma once

// Plain HTTP on the daemon's port: method + exact path -> handler. Other
// components register their endpoints (GET /health, GET /metrics, /mcp)
// before the server starts; everything else answers 404 (405 for a known path
// with another method) with a JSON body.

#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

namespace exai::net {

class ResponseStream;

// One HTTP request being answered, as a handler sees it. The handler runs on
// an HTTP thread with the whole request already received; it answers through
// response() (Poco), or hands the body over to the event loop with
// start_stream() when the answer comes later (a tool call).
class HttpExchange {
public:
  using StreamStarter = std::function<std::shared_ptr<ResponseStream>()>;

  HttpExchange(Poco::Net::HTTPServerRequest& request,
               Poco::Net::HTTPServerResponse& response,
               std::string peer_ip,
               StreamStarter start_stream)
      : request_(request)
      , response_(response)
      , peer_ip_(std::move(peer_ip))
      , start_stream_(std::move(start_stream))
  {
  }

  Poco::Net::HTTPServerRequest& request() noexcept { return request_; }
  Poco::Net::HTTPServerResponse& response() noexcept { return response_; }
  const std::string& peer_ip() const noexcept { return peer_ip_; }

  // Sends the response head as set on response() (status, headers; the
  // connection closes after the body, which has no length) and returns the
  // stream through which the body continues after the handler returns. At
  // most once, instead of sending a body.
  std::shared_ptr<ResponseStream> start_stream();
  bool streaming() const noexcept { return streaming_; }

private:
  Poco::Net::HTTPServerRequest& request_;
  Poco::Net::HTTPServerResponse& response_;
  std::string peer_ip_;
  StreamStarter start_stream_;
  bool streaming_ = false;
};

class HttpRouter {
public:
  // Runs on an HTTP thread; may throw (answered with 500).
  using Handler = std::function<void(HttpExchange& exchange)>;

  // Registers `handler` for `method` (e.g. "GET") on `path` (exact match, no
  // query string). A later registration for the same pair replaces the
  // earlier one. Not thread-safe: register before the server starts.
  void add(std::string method, std::string path, Handler handler);

  // Answers the request with the matching handler, or 404/405 JSON.
  void dispatch(HttpExchange& exchange) const;

  // Sends `body` (a JSON text) with `status`. For handlers and the router.
  static void send_json(Poco::Net::HTTPServerResponse& response,
                        Poco::Net::HTTPResponse::HTTPStatus status,
                        const std::string& body);

  // {"error":{"code":C,"message":M}} with `status`.
  static void send_error(Poco::Net::HTTPServerResponse& response,
                         Poco::Net::HTTPResponse::HTTPStatus status,
                         std::string_view code,
                         std::string_view message);

  // send_error for a request to `path`, except that MCP clients on /mcp get
  // a JSON-RPC error body (id null), the only error shape they can read.
  static void send_refusal(std::string_view path,
                           Poco::Net::HTTPServerResponse& response,
                           Poco::Net::HTTPResponse::HTTPStatus status,
                           std::string_view code,
                           std::string_view message);

private:
  std::map<std::pair<std::string, std::string>, Handler> routes_; // (path, method)
};

} // namespace exai::net
