#pragma once

#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/Timespan.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace exai::net {

// An HTTP client session that can wait for the first byte of an answer on its
// own. That tells the two failures of a reused connection apart: nothing
// arrived (the server had closed it) or the answer broke off.
class UpstreamSession final : public Poco::Net::HTTPClientSession {
public:
  explicit UpstreamSession(const Poco::Net::StreamSocket& socket);

  // Blocks until the answer's first byte is buffered (true) or the stream
  // ends (false). Throws what the socket throws (timeout, reset).
  bool await_answer();

  // Set on the socket only when they differ from what this connection last
  // had: a kept-alive connection carries many requests with the same
  // timeouts, and each change is a system call.
  void set_timeouts(Poco::Timespan receive, Poco::Timespan send);

  // Sends `request` and its `body` in one send: Poco writes a request in
  // pieces of its 4 KiB stream buffer, and a chat with 40 KB of context would
  // otherwise cost ten sends, ten TLS records and as many wake-ups of the
  // server. A body past kCollectLimit goes in pieces of that size. Throws what
  // the socket throws.
  void send(Poco::Net::HTTPRequest& request, std::string_view body);
  // Sends on the socket so far (for the tests).
  std::uint64_t sends() const noexcept { return sends_; }

  static constexpr std::size_t kCollectLimit = 64 * 1024;

protected:
  int write(const char* buffer, std::streamsize length) override;

private:
  void send_held();

  bool collecting_ = false;
  std::string held_;
  std::uint64_t sends_ = 0;
  std::optional<Poco::Timespan> receive_timeout_;
  std::optional<Poco::Timespan> send_timeout_;
};

} // namespace exai::net
