#include "net/server/http_connection.hpp"

#include "net/http/request_head.hpp"
#include "net/server/connection_hub.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace exai::net {

namespace {

using Poco::Net::HTTPResponse;

void
set_blocking(int fd, bool blocking) noexcept
{
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) {
    ::fcntl(fd, F_SETFL, blocking ? (flags & ~O_NONBLOCK) : (flags | O_NONBLOCK));
  }
}

// Edge-triggered while reading: the loop only peeks (the request stays in
// the socket for Poco), so level-triggered readiness would never clear.
constexpr std::uint32_t kReading = EPOLLIN | EPOLLRDHUP | EPOLLET;
constexpr std::uint32_t kStreaming = EPOLLIN | EPOLLRDHUP;

} // namespace

HttpConnection::HttpConnection(EventLoop& loop,
                               ConnectionHub& hub,
                               Accepted socket,
                               OutputLimits output,
                               const HttpOptions& options,
                               SteadyClock::time_point now)
    : Connection(loop, hub, std::move(socket), output)
    , hub_(hub)
    , options_(options)
    , deadline_(now + options.request_timeout)
{
  set_read_events(kReading);
}

void
HttpConnection::answer_and_close(std::string response) noexcept
{
  body_reservation_.reset(); // whatever of a body still comes is discarded
  state_ = State::closing;
  closing_since_ = SteadyClock::now();
  if (!queue(std::move(response), {}, true)) {
    drop("closed");
  }
}

void
HttpConnection::on_readable()
{
  if (state_ == State::exchanging) {
    return; // not watched meanwhile; a stray event changes nothing
  }
  if (state_ != State::reading) {
    discard_input();
    return;
  }
  if (head_bytes_ > 0) {
    receive_body();
    return;
  }
  // Peek until the head is complete: an upgrade must stay in the socket for
  // Poco, and nothing is committed before the head says what comes.
  const auto buffer = loop().receive_buffer();
  const std::size_t cap = std::min(buffer.size(), options_.max_head_bytes + 1);
  const ssize_t n = ::recv(fd(), buffer.data(), cap, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0) {
    drop(seen_bytes_ ? "peer closed mid-request" : "peer closed");
    return;
  }
  if (n < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      drop("receive failed");
    }
    return;
  }
  if (!seen_bytes_) {
    // The whole-request deadline starts with its first byte (an idle
    // keep-alive connection had its own, shorter one until now).
    seen_bytes_ = true;
    deadline_ = SteadyClock::now() + options_.request_timeout;
  }
  on_head(static_cast<std::size_t>(n));
}

void
HttpConnection::on_head(std::size_t peeked)
{
  const auto buffer = loop().receive_buffer();
  const http::HeadCheck check =
      http::inspect_request_head({buffer.data(), peeked}, options_.max_head_bytes);
  switch (check.status) {
  case http::HeadCheck::Status::incomplete:
    return; // the next edge brings more
  case http::HeadCheck::Status::too_large:
    answer_and_close(http::error_response(HTTPResponse::HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE,
                                          "REQUEST_HEADER_FIELDS_TOO_LARGE",
                                          "request head larger than EXAI_WS_PENDING_MAX_BYTES (" +
                                              std::to_string(options_.max_head_bytes) + ")"));
    return;
  case http::HeadCheck::Status::malformed:
    answer_and_close(
        http::error_response(HTTPResponse::HTTP_BAD_REQUEST, "BAD_REQUEST", check.error));
    return;
  case http::HeadCheck::Status::complete:
    break;
  }
  if (check.upgrade) {
    if (check.chunked || check.content_length.value_or(0) > 0) {
      answer_and_close(http::error_response(
          HTTPResponse::HTTP_BAD_REQUEST, "BAD_REQUEST", "a WebSocket upgrade has no body"));
      return;
    }
    hand_over_upgrade();
    return;
  }
  if (check.chunked) {
    answer_and_close(http::error_response(
        HTTPResponse::HTTP_LENGTH_REQUIRED,
        "LENGTH_REQUIRED",
        "request bodies need a Content-Length (chunked request bodies are not accepted)"));
    return;
  }
  const std::uint64_t body = check.content_length.value_or(0);
  if (body > options_.max_body_bytes) {
    answer_and_close(http::error_response(HTTPResponse::HTTP_REQUEST_ENTITY_TOO_LARGE,
                                          "PAYLOAD_TOO_LARGE",
                                          "request body larger than EXAI_WS_MAX_BYTES (" +
                                              std::to_string(options_.max_body_bytes) + ")"));
    return;
  }
  if (body > options_.max_head_bytes) {
    // Pending connections are many (EXAI_WS_MAX_PENDING) and unproven: what
    // they may make us buffer together is bounded here, not per connection.
    body_reservation_ = hub_.reserve_body(static_cast<std::size_t>(body));
    if (!body_reservation_) {
      answer_and_close(http::error_response(
          HTTPResponse::HTTP_SERVICE_UNAVAILABLE,
          "OVER_CAPACITY",
          "request bodies being received exceed EXAI_HTTP_BODIES_MAX_BYTES (" +
              std::to_string(options_.bodies_max_bytes) + ") with this one's " +
              std::to_string(body) + " bytes; try again"));
      return;
    }
  }
  head_bytes_ = check.head_bytes;
  total_bytes_ = check.head_bytes + static_cast<std::size_t>(body);
  if (check.expect_continue && body > 0 && peeked < total_bytes_ && !continue_sent_) {
    continue_sent_ = true;
    queue(http::continue_response());
  }
  receive_body();
}

void
HttpConnection::receive_body()
{
  // Exactly this request's bytes are taken; a pipelined next request stays in
  // the socket for the next round.
  if (receive_into(request_, total_bytes_ - request_.size(), "peer closed mid-request") == 0) {
    return;
  }
  if (request_.size() < total_bytes_) {
    // Edge-triggered: read again now, in case more is already there.
    loop().post([self = std::static_pointer_cast<HttpConnection>(shared_from_this())] {
      if (self->state_ == State::reading && self->head_bytes_ > 0 && !self->dropped()) {
        self->receive_body();
      }
    });
    return;
  }
  body_reservation_.reset(); // received: the exchange owns it now
  if (!start_exchange()) {
    return;
  }
  std::string request = std::move(request_);
  request_ = std::string();
  const std::size_t head = std::exchange(head_bytes_, 0);
  hub_.start_request(
      std::static_pointer_cast<HttpConnection>(shared_from_this()), std::move(request), head);
}

bool
HttpConnection::start_exchange()
{
  if (!hub_.establish(*this)) {
    answer_and_close(http::error_response(HTTPResponse::HTTP_SERVICE_UNAVAILABLE,
                                          "OVER_CAPACITY",
                                          "too many connections (MAX_CONNECTIONS)"));
    return false;
  }
  state_ = State::exchanging;
  loop().unwatch(*this); // nothing more is read until the answer is out
  return true;
}

void
HttpConnection::hand_over_upgrade()
{
  if (!start_exchange()) {
    return;
  }
  hold_output(); // Poco writes the 101 on the socket; nothing else meanwhile
  set_blocking(fd(), true);
  // The HTTP thread works on a duplicate: this descriptor stays the loop's.
  const int duplicate = ::fcntl(fd(), F_DUPFD_CLOEXEC, 0);
  if (duplicate < 0) {
    drop("out of descriptors");
    return;
  }
  hub_.start_upgrade(std::static_pointer_cast<HttpConnection>(shared_from_this()), duplicate);
}

void
HttpConnection::exchange_done(ExchangeOutcome outcome) noexcept
{
  if (dropped() || state_ != State::exchanging) {
    return; // cut at its deadline meanwhile
  }
  if (state_ == State::exchanging && (fcntl(fd(), F_GETFL) & O_NONBLOCK) == 0) {
    set_blocking(fd(), false); // after an upgrade attempt
  }
  release_output();
  switch (outcome.kind) {
  case ExchangeOutcome::Kind::keep_alive:
    state_ = State::reading;
    seen_bytes_ = false;
    continue_sent_ = false;
    deadline_ = SteadyClock::now() + options_.keepalive;
    hub_.make_pending(shared_from_this());
    set_read_events(kReading); // reports a pipelined request already waiting
    return;
  case ExchangeOutcome::Kind::close:
    // The answer (if any) is queued: close once it is out.
    answer_and_close({});
    return;
  case ExchangeOutcome::Kind::upgrade:
    hub_.upgrade(*this);
    return;
  case ExchangeOutcome::Kind::stream:
    state_ = State::streaming;
    stream_ = std::move(outcome.stream);
    set_read_events(kStreaming);
    if (output_finished()) {
      drop("response complete");
    }
    return;
  }
}

void
HttpConnection::discard_input()
{
  // While streaming or closing the client has nothing more to say; what it
  // sends anyway is read and forgotten, and its end closes the connection.
  const auto buffer = loop().receive_buffer();
  const ssize_t n = ::recv(fd(), buffer.data(), buffer.size(), MSG_DONTWAIT);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
    drop(state_ == State::streaming ? "client left the stream" : "peer closed");
  }
}

void
HttpConnection::on_drained() noexcept
{
  // A stream is complete only once its last bytes were queued and sent: its
  // writer may queue them on another thread just after this drain.
  if (state_ == State::closing || (state_ == State::streaming && output_finished())) {
    drop(state_ == State::closing ? "answered" : "response complete");
  }
}

void
HttpConnection::on_dropped(std::vector<std::string> /*unsent_tags*/) noexcept
{
  body_reservation_.reset(); // cut mid-body: the bytes it may still send are not ours
  if (stream_) {
    if (auto listener = stream_->listener()) {
      listener->on_stream_closed();
    }
  }
}

void
HttpConnection::on_tick(SteadyClock::time_point now) noexcept
{
  Connection::on_tick(now);
  if (dropped()) {
    return;
  }
  switch (state_) {
  case State::reading:
    if (now >= deadline_) {
      if (seen_bytes_) {
        answer_and_close(http::error_response(HTTPResponse::HTTP_REQUEST_TIMEOUT,
                                              "REQUEST_TIMEOUT",
                                              "request not complete within "
                                              "EXAI_HTTP_REQUEST_TIMEOUT_SECS"));
      } else {
        drop("idle");
      }
    }
    return;
  case State::exchanging:
    if (now >= deadline_) {
      // The HTTP thread is still reading a slow body (or writing to a client
      // that does not read): cut the socket so the thread is free again.
      loop().log()->info("http request cut at its deadline id={} peer={}", id(), peer_ip());
      ::shutdown(fd(), SHUT_RDWR);
      deadline_ = now + options_.close_linger; // until exchange_done arrives
    }
    return;
  case State::streaming:
    if (auto listener = stream_->listener()) {
      listener->on_stream_tick(now);
    }
    return;
  case State::closing:
    if (now - closing_since_ >= options_.close_linger) {
      drop("close linger");
    }
    return;
  }
}

} // namespace exai::net
