#include "net/http/health_routes.hpp"

#include <Poco/Net/HTTPResponse.h>

#include <ostream>

namespace exai::net {

bool
bearer_accepted(const Poco::Net::HTTPServerRequest& request, const TokenStore& tokens)
{
  // A copy: get() returns a reference to its default argument when the
  // header is absent, a temporary that dies at the end of this statement.
  const std::string header = request.get("Authorization", "");
  return tokens.accepts_bearer(header);
}

namespace {

// `handler`, answered with 401 instead when the bearer token is missing or wrong.
HttpRouter::Handler
with_bearer(TokenStore& tokens, HttpRouter::Handler handler)
{
  return [&tokens, handler = std::move(handler)](HttpExchange& exchange) {
    if (!bearer_accepted(exchange.request(), tokens)) {
      exchange.response().set("WWW-Authenticate", "Bearer");
      HttpRouter::send_error(exchange.response(),
                             Poco::Net::HTTPResponse::HTTP_UNAUTHORIZED,
                             "UNAUTHORIZED",
                             "missing or wrong bearer token (EXAI_WS_TOKEN)");
      return;
    }
    handler(exchange);
  };
}

} // namespace

void
register_health_routes(HttpRouter& router,
                       std::function<nlohmann::json()> health,
                       std::function<std::string()> metrics,
                       TokenStore& tokens)
{
  router.add(
      "GET", "/health", with_bearer(tokens, [health = std::move(health)](HttpExchange& exchange) {
        const nlohmann::json doc = health();
        HttpRouter::send_json(exchange.response(),
                              doc.value("healthy", false)
                                  ? Poco::Net::HTTPResponse::HTTP_OK
                                  : Poco::Net::HTTPResponse::HTTP_SERVICE_UNAVAILABLE,
                              doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
      }));
  router.add("GET",
             "/metrics",
             with_bearer(tokens, [metrics = std::move(metrics)](HttpExchange& exchange) {
               auto& response = exchange.response();
               const std::string body = metrics();
               response.setStatus(Poco::Net::HTTPResponse::HTTP_OK);
               response.setContentType("text/plain; version=0.0.4; charset=utf-8");
               response.setContentLength(static_cast<std::streamsize>(body.size()));
               response.send() << body;
             }));
}

} // namespace exai::net
