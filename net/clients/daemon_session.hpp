#pragma once

// How exai's own client processes (`exai mcp`, `exai stress`, `exai health`)
// find the daemon and open a session on it: one address type, one URL
// parser (Poco::URI), one hello.

#include "core/config/config.hpp"

#include <Poco/Net/WebSocket.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

namespace exai::net {

// Where a client finds the daemon.
struct DaemonAddress {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8079;
  std::string path = "/";
  std::string token; // sent in hello and as a bearer token; empty = none

  std::string ws_url() const;   // ws://host:port/path
  std::string http_url() const; // http://host:port

  // EXAI_WS_HOST, EXAI_WS_PORT and EXAI_WS_TOKEN of `config`; a wildcard bind
  // address (0.0.0.0, ::) becomes the matching loopback address.
  static DaemonAddress from(const core::DaemonConfig& config);
};

// Sets host, port and path from "ws://HOST[:PORT][/PATH]" (port 80 when
// absent). Throws core::Error(config_invalid) naming `flag`, the value and
// what is expected.
void apply_url(DaemonAddress& address, const std::string& url, std::string_view flag = "--url");

// The daemon cannot be reached (nothing listens, the connection broke).
class DaemonUnreachable : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

// The daemon answered but would not admit this client: a hello refused (the
// reason it gave), a close with a code (1008 beyond MAX_CONNECTIONS) or an
// upgrade answered with an HTTP error.
class DaemonRefused : public DaemonUnreachable {
public:
  // `definite`: retrying cannot help until someone changes the token (HTTP
  // 401/403 at the upgrade, hello refused as unauthorized); a refusal for
  // capacity (close 1008) is not definite.
  explicit DaemonRefused(const std::string& what, bool definite = false)
      : DaemonUnreachable(what)
      , definite_(definite)
  {
  }
  bool definite() const noexcept { return definite_; }

private:
  bool definite_;
};

struct OpenedSession {
  std::unique_ptr<Poco::Net::WebSocket> socket; // blocking, with `timeout` for I/O
  std::string session_id;
  bool resumed = false; // the daemon accepted `resume`
};

// Connects, upgrades and says hello (with the token, `client_name` and, when
// not empty, the session id to resume). Throws DaemonRefused or
// DaemonUnreachable; the message says which and why.
OpenedSession open_session(const DaemonAddress& address,
                           std::chrono::milliseconds timeout,
                           std::string_view client_name,
                           const std::string& resume = {},
                           std::size_t max_payload = std::size_t{1} << 30U);

} // namespace exai::net
