#pragma once

// The operator view on the daemon's port: the page at GET / (its script and
// style at /ui/app.js and /ui/app.css) and its data at GET /api/top, the
// JSON snapshot that `exai top` reads too. Not registered when EXAI_UI=false
// (every path then answers 404).

#include "net/http/http_router.hpp"
#include "net/server/auth.hpp"

#include <nlohmann/json.hpp>

#include <functional>
#include <string_view>

namespace exai::net {

// The Content-Security-Policy of every operator-view response: only the
// page's own script, style and API; no inline code, no framing.
inline constexpr std::string_view kUiContentSecurityPolicy =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; font-src 'none'; object-src 'none'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'";

// Registers the page (no token needed: it holds no data and asks for the
// token itself) and GET /api/top, which requires `Authorization: Bearer
// <token>` when a token is configured (never a query parameter or cookie).
// `snapshot` runs on an HTTP thread.
void register_ui_routes(HttpRouter& router,
                        std::function<nlohmann::json()> snapshot,
                        TokenStore& tokens);

} // namespace exai::net
