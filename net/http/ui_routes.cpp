#include "net/http/ui_routes.hpp"

#include "net/http/health_routes.hpp"
#include "net/http/ui_assets.hpp"

#include <Poco/Net/HTTPResponse.h>

#include <ostream>
#include <string>

namespace exai::net {

namespace {

using Poco::Net::HTTPResponse;

// Headers of every operator-view response.
void
harden(Poco::Net::HTTPServerResponse& response)
{
  response.set("Content-Security-Policy", std::string(kUiContentSecurityPolicy));
  response.set("X-Content-Type-Options", "nosniff");
  response.set("X-Frame-Options", "DENY");
  response.set("Referrer-Policy", "no-referrer");
  response.set("Cache-Control", "no-store");
}

HttpRouter::Handler
serve_asset(const UiAsset& asset)
{
  return [&asset](HttpExchange& exchange) {
    auto& response = exchange.response();
    harden(response);
    response.setStatus(HTTPResponse::HTTP_OK);
    response.setContentType(std::string(asset.content_type));
    response.setContentLength(static_cast<std::streamsize>(asset.body.size()));
    response.send().write(asset.body.data(), static_cast<std::streamsize>(asset.body.size()));
  };
}

} // namespace

void
register_ui_routes(HttpRouter& router, std::function<nlohmann::json()> snapshot, TokenStore& tokens)
{
  for (const UiAsset& asset : ui_assets()) {
    std::string path = "/";
    if (asset.name != "index.html") {
      path.append("ui/");
      path.append(asset.name);
    }
    router.add("GET", path, serve_asset(asset));
  }
  // Browsers ask for it on their own; the page has no icon.
  router.add("GET", "/favicon.ico", [](HttpExchange& exchange) {
    auto& response = exchange.response();
    harden(response);
    response.setStatus(HTTPResponse::HTTP_NO_CONTENT);
    response.setContentLength(0);
    response.send();
  });
  router.add("GET", "/api/top", [&tokens, snapshot = std::move(snapshot)](HttpExchange& exchange) {
    auto& response = exchange.response();
    harden(response);
    if (!bearer_accepted(exchange.request(), tokens)) {
      // No WWW-Authenticate: a browser would pop up its own
      // login box; the page asks for the token itself.
      HttpRouter::send_error(response,
                             HTTPResponse::HTTP_UNAUTHORIZED,
                             "UNAUTHORIZED",
                             "missing or wrong bearer token (EXAI_WS_TOKEN)");
      return;
    }
    const nlohmann::json doc = snapshot();
    HttpRouter::send_json(response,
                          HTTPResponse::HTTP_OK,
                          doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  });
}

} // namespace exai::net
