#pragma once

// A plain HTTP connection (every TCP connection starts as one; a WebSocket
// upgrade turns it into a WsConnection). The event loop peeks at its input
// until a whole request — head and body, within limits — is there, under one
// deadline for the whole request; only then does an HTTP thread take it
// (Poco parses and answers it). So a client that trickles a request, or sends
// none, holds no thread: it waits in the loop and is cut at its deadline.
//
// States: reading (waiting for a complete request, or idle between
// keep-alive requests) -> exchanging (an HTTP thread owns the socket; the
// loop only watches the deadline) -> reading again (keep-alive), streaming
// (the handler returned but the body continues: SSE of a tool call), or
// closing (a final answer queued).

#include "net/http/response_stream.hpp"
#include "net/server/connection.hpp"

#include <cstdint>
#include <memory>
#include <string>

namespace exai::net {

class ConnectionHub;

struct HttpOptions {
  std::size_t max_head_bytes = 65536;                   // EXAI_WS_PENDING_MAX_BYTES
  std::size_t max_peek_bytes = std::size_t{256} << 10U; // head + body seen before handing over
  Millis request_timeout{10000};                        // EXAI_HTTP_REQUEST_TIMEOUT_SECS
  Millis keepalive{30000};                              // EXAI_HTTP_KEEPALIVE_SECS
  Millis close_linger{2000};
};

// How an HTTP thread finished with a request.
struct ExchangeOutcome {
  enum class Kind { keep_alive, close, upgrade, stream };
  Kind kind = Kind::close;
  std::shared_ptr<ResponseStream> stream; // stream: where the body continues
};

class HttpConnection final : public Connection {
public:
  HttpConnection(EventLoop& loop,
                 ConnectionHub& hub,
                 UniqueFd fd,
                 std::uint64_t id,
                 std::string peer_ip,
                 bool loopback_peer,
                 OutputLimits output,
                 const HttpOptions& options,
                 SteadyClock::time_point now);

  void on_tick(SteadyClock::time_point now) noexcept override;

  // Loop thread: the HTTP thread is done with the request.
  void exchange_done(ExchangeOutcome outcome) noexcept;

  // Answers from the loop itself (error responses) and closes.
  void answer_and_close(std::string response) noexcept;

private:
  enum class State { reading, exchanging, streaming, closing };

  void on_readable() override;
  void on_drained() noexcept override;
  void on_dropped(std::vector<std::string> unsent_tags) noexcept override;
  void hand_over();
  void discard_input();

  ConnectionHub& hub_;
  const HttpOptions& options_;
  // Loop thread only.
  State state_ = State::reading;
  SteadyClock::time_point deadline_;
  SteadyClock::time_point closing_since_{};
  bool seen_bytes_ = false;    // reading: a byte of this request arrived
  bool continue_sent_ = false; // reading: "100 Continue" went out
  std::shared_ptr<ResponseStream> stream_;
};

} // namespace exai::net
