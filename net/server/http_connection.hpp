#pragma once

// A plain HTTP connection (every TCP connection starts as one; a WebSocket
// upgrade turns it into a WsConnection). The event loop receives a whole
// request — head and body — under one deadline for the whole request before
// any thread sees it: it peeks until the head is complete, then either reads
// head and body into this connection's buffer (a plain request, answered in
// memory), or, for a WebSocket upgrade, leaves the request in the socket for
// Poco. So a client that trickles a request, or sends none, holds no thread:
// it waits in the loop and is cut at its deadline (408).
//
// States: reading (waiting for a complete request, or idle between
// keep-alive requests) -> exchanging (an HTTP thread answers it) -> reading
// again (keep-alive), streaming (the handler returned but the body
// continues: SSE of a tool call), or closing (a final answer queued).

#include "net/http/response_stream.hpp"
#include "net/server/body_reservation.hpp"
#include "net/server/connection.hpp"

#include <cstdint>
#include <memory>
#include <string>

namespace exai::net {

class ConnectionHub;

struct HttpOptions {
  std::size_t max_head_bytes = 65536;    // EXAI_WS_PENDING_MAX_BYTES
  std::size_t max_body_bytes = 33554432; // EXAI_WS_MAX_BYTES
  // Bodies over max_head_bytes being received, all connections together.
  std::size_t bodies_max_bytes = 134217728; // EXAI_HTTP_BODIES_MAX_BYTES
  Millis request_timeout{10000};            // EXAI_HTTP_REQUEST_TIMEOUT_SECS
  Millis keepalive{30000};                  // EXAI_HTTP_KEEPALIVE_SECS
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
                 Accepted socket,
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
  void on_head(std::size_t peeked);
  void receive_body();
  // Takes one of the MAX_CONNECTIONS places and stops reading until the
  // answer is out; false (503 answered, closing) when none is left.
  bool start_exchange();
  void hand_over_upgrade();
  void discard_input();

  ConnectionHub& hub_;
  const HttpOptions& options_;
  // Loop thread only.
  State state_ = State::reading;
  SteadyClock::time_point deadline_;
  SteadyClock::time_point closing_since_{};
  bool seen_bytes_ = false;     // reading: a byte of this request arrived
  bool continue_sent_ = false;  // reading: "100 Continue" went out
  std::size_t head_bytes_ = 0;  // reading: > 0 once the head is complete
  std::size_t total_bytes_ = 0; // reading: head + body
  std::string request_;         // reading: the request received so far
  // reading: this request's share of EXAI_HTTP_BODIES_MAX_BYTES (large bodies)
  BodyReservation body_reservation_;
  std::shared_ptr<ResponseStream> stream_;
};

} // namespace exai::net
