#include "net/upstream/upstream_session.hpp"

#include <Poco/Net/NetException.h>

#include <ostream>
#include <utility>

namespace exai::net {

UpstreamSession::UpstreamSession(const Poco::Net::StreamSocket& socket)
    : Poco::Net::HTTPClientSession(socket)
{
  // Without a host Poco never reconnects on its own: a dead connection fails
  // instead of being replaced behind our back (plain TCP for an https
  // provider, no stop callback, no connect deadline).
  setKeepAlive(true);
}

bool
UpstreamSession::await_answer()
{
  return peek() != std::char_traits<char>::eof();
}

void
UpstreamSession::set_timeouts(Poco::Timespan receive, Poco::Timespan send)
{
  if (receive_timeout_ != receive) {
    socket().setReceiveTimeout(receive);
    receive_timeout_ = receive;
  }
  if (send_timeout_ != send) {
    socket().setSendTimeout(send);
    send_timeout_ = send;
  }
}

void
UpstreamSession::send(Poco::Net::HTTPRequest& request, std::string_view body)
{
  // What Poco writes meanwhile is held (write()); after a throw the
  // connection is closed, never reused, so the flag needs no resetting.
  collecting_ = true;
  held_.clear();
  std::ostream& out = sendRequest(request);
  out.exceptions(std::ios::badbit); // Poco's error itself, not a silent bad stream
  out.write(body.data(), static_cast<std::streamsize>(body.size()));
  out.flush();
  collecting_ = false;
  send_held();
}

void
UpstreamSession::send_held()
{
  if (held_.empty()) {
    return;
  }
  // The buffer is emptied first: after a failed send nothing half-sent is
  // left to go out with a later request.
  const std::string bytes = std::move(held_);
  held_.clear();
  std::size_t sent = 0;
  while (sent < bytes.size()) {
    const int n = HTTPClientSession::write(bytes.data() + sent,
                                           static_cast<std::streamsize>(bytes.size() - sent));
    ++sends_;
    if (n <= 0) {
      throw Poco::Net::NetException("the connection accepted no more bytes");
    }
    sent += static_cast<std::size_t>(n);
  }
}

int
UpstreamSession::write(const char* buffer, std::streamsize length)
{
  if (!collecting_) {
    ++sends_;
    return HTTPClientSession::write(buffer, length);
  }
  held_.append(buffer, static_cast<std::size_t>(length));
  if (held_.size() >= kCollectLimit) {
    send_held();
  }
  return static_cast<int>(length);
}

} // namespace exai::net
