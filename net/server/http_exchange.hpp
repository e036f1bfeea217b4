#pragma once

// One complete HTTP request answered on an HTTP thread: Poco parses it
// (HTTPServerRequestImpl over the socket, whose bytes are all there already)
// and writes the answer; exai's HttpRouter picks the handler. Mirrors Poco's
// HTTPServerConnection::run for a single request, so that between requests the
// socket goes back to its event loop instead of blocking a thread.

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
  std::size_t max_body_bytes;         // a longer unread body closes the connection
  std::shared_ptr<spdlog::logger> log;
};

// Answers the request waiting on `socket_fd` — a duplicate of `connection`'s
// socket, in blocking mode, which this function closes. Never throws.
ExchangeOutcome run_exchange(int socket_fd,
                             const std::shared_ptr<Connection>& connection,
                             bool continue_sent,
                             const ExchangeServices& services) noexcept;

} // namespace exai::net
