#pragma once

// Answering one HTTP request on an HTTP thread, once the event loop has
// received all of it. Plain requests are answered in memory (Poco parses the
// head and formats the answer; the loop sends it): no thread blocks on the
// client's socket. A WebSocket upgrade (a GET without a body, peeked whole but
// left in the socket) is performed by Poco's WebSocket on a blocking duplicate
// of the socket, after which the loop owns the connection again.

#include "net/http/http_router.hpp"
#include "net/server/http_connection.hpp"

#include <Poco/Net/HTTPServerParams.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

namespace exai::net {

struct ExchangeServices {
  const HttpRouter& router;
  Poco::Net::HTTPServerParams::Ptr params;
  bool loopback_bind; // Host must name loopback
  const std::vector<std::string>& allowed_origins;
  const std::atomic<bool>& accepting; // upgrades refused (503) when false
  std::shared_ptr<spdlog::logger> log;
};

// Answers the request in `bytes` (its head is the first `head_bytes`): the
// answer is queued on `connection`; the outcome says whether it streams on
// and whether the connection may carry another request. Never throws.
ExchangeOutcome run_request(std::string bytes,
                            std::size_t head_bytes,
                            const std::shared_ptr<Connection>& connection,
                            const ExchangeServices& services) noexcept;

// Performs the WebSocket upgrade waiting on `socket_fd` — a blocking
// duplicate of `connection`'s socket, closed here. Never throws.
ExchangeOutcome run_upgrade(int socket_fd,
                            const std::shared_ptr<Connection>& connection,
                            const ExchangeServices& services) noexcept;

} // namespace exai::net
