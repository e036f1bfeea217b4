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
                               UniqueFd fd,
                               std::uint64_t id,
                               std::string peer_ip,
                               bool loopback_peer,
                               OutputLimits output,
                               const HttpOptions& options,
                               SteadyClock::time_point now)
    : Connection(loop, hub, std::move(fd), id, std::move(peer_ip), loopback_peer, output)
    , hub_(hub)
    , options_(options)
    , deadline_(now + options.request_timeout)
{
  set_read_events(kReading);
}

void
HttpConnection::answer_and_close(std::string response) noexcept
{
  state_ = State::closing;
  closing_since_ = SteadyClock::now();
  if (!queue(std::move(response), {}, true)) {
    drop("closed");
  }
}

void
HttpConnection::on_readable()
{
  if (state_ != State::reading) {
    discard_input();
    return;
  }
  const auto buffer = loop().receive_buffer();
  const std::size_t cap = std::min(buffer.size(), options_.max_peek_bytes);
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
  const auto peeked = static_cast<std::size_t>(n);
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
  if (!check.chunked) {
    const std::uint64_t need = check.content_length.value_or(0);
    const std::size_t have = peeked - check.head_bytes;
    // Wait for the body while it fits what the loop may look at; a larger
    // one is read by the HTTP thread under the same deadline.
    if (need > have && peeked < cap) {
      if (check.expect_continue && !continue_sent_) {
        continue_sent_ = true;
        queue(http::continue_response());
      }
      return;
    }
  }
  hand_over();
}

void
HttpConnection::hand_over()
{
  if (!hub_.establish(*this)) {
    answer_and_close(http::error_response(HTTPResponse::HTTP_SERVICE_UNAVAILABLE,
                                          "OVER_CAPACITY",
                                          "too many connections (MAX_CONNECTIONS)"));
    return;
  }
  state_ = State::exchanging;
  loop().unwatch(*this);
  flush();       // a "100 Continue" leaves before Poco writes anything
  hold_output(); // and nothing else until the HTTP thread is done
  set_blocking(fd(), true);
  // The HTTP thread works on a duplicate: this descriptor stays the loop's.
  const int duplicate = ::fcntl(fd(), F_DUPFD_CLOEXEC, 0);
  if (duplicate < 0) {
    drop("out of descriptors");
    return;
  }
  hub_.start_exchange(
      std::static_pointer_cast<HttpConnection>(shared_from_this()), duplicate, continue_sent_);
}

void
HttpConnection::exchange_done(ExchangeOutcome outcome) noexcept
{
  if (dropped() || state_ != State::exchanging) {
    return; // cut at its deadline meanwhile
  }
  set_blocking(fd(), false);
  switch (outcome.kind) {
  case ExchangeOutcome::Kind::keep_alive:
    state_ = State::reading;
    seen_bytes_ = false;
    continue_sent_ = false;
    deadline_ = SteadyClock::now() + options_.keepalive;
    hub_.make_pending(shared_from_this());
    release_output();
    set_read_events(kReading);
    return;
  case ExchangeOutcome::Kind::close:
    drop("request answered");
    return;
  case ExchangeOutcome::Kind::upgrade:
    hub_.upgrade(*this);
    return;
  case ExchangeOutcome::Kind::stream:
    state_ = State::streaming;
    stream_ = std::move(outcome.stream);
    set_read_events(kStreaming);
    release_output();
    if (stream_->ended() && output_empty()) {
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
  if (state_ == State::closing || (state_ == State::streaming && stream_ && stream_->ended())) {
    drop(state_ == State::closing ? "answered" : "response complete");
  }
}

void
HttpConnection::on_dropped(std::vector<std::string> /*unsent_tags*/) noexcept
{
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
