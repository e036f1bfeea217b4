#pragma once

// One HTTP(S) exchange with a provider as a TransferLoop runs it: what goes
// out, how long it may take, and how it ended. Plain values: the loop owns
// the libcurl handles, these never see them.

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace exai::net {

using TransferClock = std::chrono::steady_clock;

struct TransferRequest {
  // Whose counters the exchange counts in (the provider id). Connections are
  // kept per host by libcurl; a pool is the accounting view of them.
  std::string pool;
  std::string method = "POST"; // POST | GET | DELETE
  std::string url;
  std::vector<std::string> headers; // "Name: value"
  std::string body;                 // POST only
  std::chrono::milliseconds connect_timeout{10000};
  // The longest silence: no byte of the answer for this long ends the
  // exchange as `timeout` (from the start until the answer begins) or
  // `stalled` (once it began, with stall_timeout when that is set).
  std::chrono::milliseconds read_timeout{120000};
  std::chrono::milliseconds stall_timeout{0}; // 0: read_timeout applies throughout
  TransferClock::time_point deadline = TransferClock::time_point::max(); // ends as `timeout`
  std::size_t max_body = 64U << 20U; // a longer collected body ends as `too_large`
  // A kept-alive connection idle longer than this is not used again;
  // 0: this exchange neither reuses nor keeps its connection.
  std::chrono::seconds max_idle{30};
  // PEM CA bundle replacing the system store; empty: the loop's
  // (TransferLoop::Options::ca_file).
  std::string ca_file;
};

enum class TransferError {
  none,
  connect,   // no connection (refused, unreachable, connect timeout)
  tls,       // the TLS handshake or the certificate check failed
  timeout,   // silence before the answer, or the deadline
  stalled,   // silence in the middle of the answer
  broken,    // the connection failed while sending or receiving
  too_large, // the body passed max_body
  aborted,   // the body handler refused a piece
  cancelled, // cancel() or the stop token
  shutdown,  // the loop was destroyed first
};

struct TransferResult {
  TransferError error = TransferError::none;
  std::string message; // what failed, for errors and logs; empty on success
  int status = 0;      // the final answer's HTTP status; 0 before one arrived
  std::vector<std::pair<std::string, std::string>> headers; // of that answer, in order
  std::string body;           // collected, unless TransferHandlers::on_body took it
  bool answered = false;      // some byte of an answer arrived
  bool reused = false;        // the request went out on a kept-alive connection
  bool retried_fresh = false; // a kept-alive connection was found closed; sent again on a new one
  bool tls_resumed = false;   // a new HTTPS connection resumed an earlier TLS session

  // The first header named `name` (any case); empty when absent.
  std::string_view header(std::string_view name) const noexcept;
};

struct TransferHandlers {
  // Each piece of the answer's body as it arrives; `head` has the status and
  // headers. Returning false ends the exchange as `aborted`. Null: the body
  // is collected into TransferResult::body.
  std::function<bool(const TransferResult& head, std::string_view piece)> on_body;
  // Exactly once per started exchange, on the loop's thread (or in the
  // loop's destructor, with `shutdown`).
  std::function<void(TransferResult result)> on_done;
};

} // namespace exai::net
