#pragma once

// GET /health and GET /metrics on the daemon's port (SPEC §5).

#include "net/http/http_router.hpp"
#include "net/server/auth.hpp"

#include <nlohmann/json.hpp>

#include <functional>
#include <string>

namespace exai::net {

// Registers GET /health (the health document; 200 when "healthy" is true,
// else 503) and GET /metrics (Prometheus text format 0.0.4). Both require
// `Authorization: Bearer <token>` when a token is configured (401 otherwise).
// The functions run on Poco's HTTP threads, never on call threads, so they
// answer while every call thread waits on a provider.
void register_health_routes(HttpRouter& router,
                            std::function<nlohmann::json()> health,
                            std::function<std::string()> metrics,
                            TokenStore& tokens);

// True when `request` may use an HTTP endpoint: no token is configured, or it
// carries `Authorization: Bearer <token>` (constant-time compare).
bool bearer_accepted(const Poco::Net::HTTPServerRequest& request, const TokenStore& tokens);

} // namespace exai::net
