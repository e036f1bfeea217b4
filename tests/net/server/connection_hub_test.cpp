// The hub's admission rules, driven directly with socket pairs standing in for
// accepted TCP connections from any address.

#include "core/config/config.hpp"
#include "net/http/http_router.hpp"
#include "net/server/connection_hub.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <functional>
#include <memory>
#include <vector>

namespace {

using namespace exai::core;
using namespace exai::net;
using namespace std::chrono_literals;

class NoMessages final : public exai::net::MessageHandler {
public:
  void on_message(const std::shared_ptr<WsConnection>& /*connection*/,
                  std::string_view /*payload*/) override
  {
  }
  void on_closed(const std::shared_ptr<WsConnection>& /*connection*/,
                 std::vector<std::string> /*unsent*/) noexcept override
  {
  }
};

UniqueFd
listening_socket()
{
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  REQUIRE(::listen(fd, 16) == 0);
  return UniqueFd(fd);
}

// True when the peer end of a socket pair sees EOF before `limit`.
bool
closed_within(int fd, std::chrono::milliseconds limit)
{
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(limit.count())) <= 0) {
    return false;
  }
  char byte = 0;
  return ::recv(fd, &byte, 1, MSG_DONTWAIT) == 0;
}

struct HubFixture {
  explicit HubFixture(std::size_t per_ip,
                      std::function<bool(const Connection&)> adopt_fault = nullptr)
      : hub(
            [&] {
              HubOptions o = HubOptions::from(exai::core::DaemonConfig{});
              o.max_connections_per_ip = per_ip;
              o.adopt_fault = std::move(adopt_fault);
              return o;
            }(),
            router,
            handler,
            spdlog::default_logger())
  {
    hub.start(listening_socket());
  }
  ~HubFixture() { hub.stop(1001, "test over", 0ms); }
  HubFixture(const HubFixture&) = delete;
  HubFixture& operator=(const HubFixture&) = delete;

  // A connection "from" `ip`; returns the client end.
  UniqueFd connect_from(const std::string& ip, bool loopback)
  {
    int pair[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, pair) == 0);
    hub.accepted(UniqueFd(pair[0]), ip, loopback);
    return UniqueFd(pair[1]);
  }

  // Whether a connection from remote `ip` is admitted within 10 s: the hub
  // frees a place on its loop, after whatever the test did returned. A
  // refused attempt is closed at once, so attempts are bounded by time.
  bool admitted_soon(const std::string& ip)
  {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
      const UniqueFd next = connect_from(ip, false);
      if (!closed_within(next.get(), 50ms)) {
        return true;
      }
    }
    return false;
  }

  HttpRouter router;
  NoMessages handler;
  ConnectionHub hub;
};

} // namespace

TEST_CASE("a remote peer beyond MAX_CONNECTIONS_PER_IP is closed at once", "[net][hub]")
{
  HubFixture f(2);
  std::vector<UniqueFd> clients;
  for (int i = 0; i < 2; ++i) {
    clients.push_back(f.connect_from("10.1.2.3", false));
  }
  UniqueFd third = f.connect_from("10.1.2.3", false);
  CHECK(closed_within(third.get(), 5s));
  for (const auto& client : clients) {
    CHECK_FALSE(closed_within(client.get(), 100ms));
  }
  CHECK(f.hub.stats().refused == 1);
  // Another address has its own count.
  UniqueFd other = f.connect_from("10.9.9.9", false);
  CHECK_FALSE(closed_within(other.get(), 100ms));
}

TEST_CASE("every loopback peer is the one local peer, not limited per address", "[net][hub]")
{
  HubFixture f(2);
  std::vector<UniqueFd> clients;
  for (int i = 0; i < 10; ++i) {
    clients.push_back(f.connect_from("127.0.0." + std::to_string(1 + i % 3), true));
  }
  for (const auto& client : clients) {
    CHECK_FALSE(closed_within(client.get(), 50ms));
  }
  CHECK(f.hub.stats().refused == 0);
}

TEST_CASE("a remote peer's place is free again once its connection closed", "[net][hub]")
{
  HubFixture f(1);
  {
    UniqueFd first = f.connect_from("10.1.2.3", false);
    CHECK_FALSE(closed_within(first.get(), 50ms));
  } // closed by the client
  // The hub sees the close on its loop; the next connection from that peer
  // is admitted once it has.
  CHECK(f.admitted_soon("10.1.2.3"));
}

TEST_CASE("a connection that never reaches its loop gives its peer's place back", "[net][hub]")
{
  // epoll refuses /dev/null (EPERM): the loop's adopt() fails as it would on
  // ENOMEM or a full max_user_watches, after the peer's place was taken.
  HubFixture f(1);
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  REQUIRE(null_fd >= 0);
  f.hub.accepted(UniqueFd(null_fd), "10.1.2.3", false);
  // The failed adoption happens on the loop: the peer's next connection is
  // admitted once it has.
  CHECK(f.admitted_soon("10.1.2.3"));
}

TEST_CASE("a WebSocket that never reaches its loop is not counted and gives its place back",
          "[net][hub]")
{
  // Counted before adoption, a WebSocket whose adoption failed was never
  // dropped: stop() waited for it, and its peer's place stayed taken.
  HubFixture f(
      1, [](const Connection& c) { return dynamic_cast<const WsConnection*>(&c) != nullptr; });
  UniqueFd client = f.connect_from("10.1.2.3", false);
  const std::string upgrade =
      "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
      "Sec-WebSocket-Version: 13\r\n\r\n";
  REQUIRE(::send(client.get(), upgrade.data(), upgrade.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(upgrade.size()));
  // The handshake's answer arrives, then the socket closes: its WebSocket
  // could not be adopted.
  std::string answer;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  bool closed = false;
  while (!closed && std::chrono::steady_clock::now() < deadline) {
    pollfd p{client.get(), POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) {
      continue;
    }
    char buffer[512];
    const ssize_t n = ::recv(client.get(), buffer, sizeof buffer, MSG_DONTWAIT);
    if (n > 0) {
      answer.append(buffer, static_cast<std::size_t>(n));
    }
    closed = n == 0 || (n < 0 && errno != EAGAIN);
  }
  REQUIRE(closed);
  CHECK(answer.rfind("HTTP/1.1 101", 0) == 0);
  CHECK(f.hub.stats().websockets == 0);
  // The place goes back as upgrade() unwinds, which may end after the
  // socket closed: the peer's next connection is admitted within a deadline.
  CHECK(f.admitted_soon("10.1.2.3"));
}
