#include "net/upstream/upstream_session.hpp"

#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/Net/StreamSocket.h>
#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <sys/time.h>

#include <array>
#include <chrono>
#include <future>
#include <sstream>
#include <string>

using namespace exai::net;

namespace {

// A loopback listener and one session connected to it.
struct SessionOnLoopback {
  Poco::Net::ServerSocket listener{Poco::Net::SocketAddress("127.0.0.1", 0)};
  UpstreamSession session{connect()};
  Poco::Net::StreamSocket peer = listener.acceptConnection();

  Poco::Net::StreamSocket connect()
  {
    Poco::Net::StreamSocket socket;
    socket.connect(Poco::Net::SocketAddress("127.0.0.1", listener.address().port()));
    return socket;
  }

  // What the peer receives until `size` bytes arrived (5 s at most).
  std::future<std::string> receive(std::size_t size)
  {
    return std::async(std::launch::async, [this, size] {
      peer.setReceiveTimeout(Poco::Timespan(5, 0));
      std::string bytes;
      std::array<char, 16384> buffer{};
      while (bytes.size() < size) {
        const int n = peer.receiveBytes(buffer.data(), static_cast<int>(buffer.size()));
        if (n <= 0) {
          break;
        }
        bytes.append(buffer.data(), static_cast<std::size_t>(n));
      }
      return bytes;
    });
  }

  // A POST of `body`, sent whole by the session (`collect`) or as Poco
  // writes it; returns the head's size.
  std::size_t post(const std::string& body, bool collect)
  {
    Poco::Net::HTTPRequest request(
        Poco::Net::HTTPRequest::HTTP_POST, "/v1/chat/completions", "HTTP/1.1");
    request.setContentType("application/json");
    request.setContentLength(static_cast<std::streamsize>(body.size()));
    std::ostringstream head;
    request.write(head);
    if (collect) {
      session.send(request, body);
    } else { // Poco's own way, for the baseline
      std::ostream& out = session.sendRequest(request);
      out.write(body.data(), static_cast<std::streamsize>(body.size()));
      out.flush();
    }
    return head.str().size();
  }
};

std::chrono::milliseconds
receive_timeout_of(const Poco::Net::StreamSocket& socket)
{
  timeval value{};
  socklen_t size = sizeof(value);
  REQUIRE(::getsockopt(socket.impl()->sockfd(), SOL_SOCKET, SO_RCVTIMEO, &value, &size) == 0);
  return std::chrono::seconds(value.tv_sec) + std::chrono::duration_cast<std::chrono::milliseconds>(
                                                  std::chrono::microseconds(value.tv_usec));
}

} // namespace

TEST_CASE_METHOD(SessionOnLoopback,
                 "a collected request's head and body leave in one send",
                 "[net][upstream_pool]")
{
  // A chat request with some context: larger than Poco's 4 KiB stream buffer.
  const std::string body(20000, 'b');
  auto received = receive(body.size() + 1);
  const std::size_t head = post(body, true);
  CHECK(session.sends() == 1);
  session.socket().shutdownSend();
  const std::string bytes = received.get();
  REQUIRE(bytes.size() == head + body.size());
  CHECK(bytes.rfind("POST /v1/chat/completions HTTP/1.1\r\n", 0) == 0);
  CHECK(bytes.find("Content-Length: 20000\r\n") != std::string::npos);
  CHECK(bytes.substr(head) == body);
}

TEST_CASE_METHOD(SessionOnLoopback,
                 "without collecting, Poco sends a request in pieces of its 4 KiB buffer",
                 "[net][upstream_pool]")
{
  // The baseline the collected send improves on: if Poco ever sends a
  // request whole by itself, collecting is dead code.
  const std::string body(20000, 'b');
  auto received = receive(body.size() + 1);
  const std::size_t head = post(body, false);
  CHECK(session.sends() >= 5);
  session.socket().shutdownSend();
  CHECK(received.get().size() == head + body.size());
}

TEST_CASE_METHOD(SessionOnLoopback,
                 "a body past the collect limit goes in pieces and arrives whole",
                 "[net][upstream_pool]")
{
  std::string body(3 * UpstreamSession::kCollectLimit + 123, '\0');
  for (std::size_t i = 0; i < body.size(); ++i) {
    body[i] = static_cast<char>('a' + i % 26);
  }
  auto received = receive(body.size() + 1);
  const std::size_t head = post(body, true);
  CHECK(session.sends() >= 3);
  session.socket().shutdownSend();
  const std::string bytes = received.get();
  REQUIRE(bytes.size() == head + body.size());
  CHECK(bytes.substr(head) == body);
}

TEST_CASE_METHOD(SessionOnLoopback,
                 "a session sets a socket timeout only when it changes",
                 "[net][upstream_pool]")
{
  using std::chrono::milliseconds;
  session.set_timeouts(Poco::Timespan(1, 0), Poco::Timespan(2, 0));
  CHECK(receive_timeout_of(session.socket()) == milliseconds(1000));
  // Changed behind the session's back: the same values again are not sent.
  session.socket().setReceiveTimeout(Poco::Timespan(7, 0));
  session.set_timeouts(Poco::Timespan(1, 0), Poco::Timespan(2, 0));
  CHECK(receive_timeout_of(session.socket()) == milliseconds(7000));
  // A different value is.
  session.set_timeouts(Poco::Timespan(3, 0), Poco::Timespan(2, 0));
  CHECK(receive_timeout_of(session.socket()) == milliseconds(3000));
}
