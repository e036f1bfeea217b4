// exai_bench_relay: the least any process between a client and the fake
// upstream can cost. It relays bytes both ways (poll, recv, send; no parsing,
// no threads), one client connection at a time, each over its own upstream
// connection. scripts/bench.sh times curl through it next to curl direct, so
// the chat overhead row has its floor measured in the same run.
//
// Usage: exai_bench_relay UPSTREAM_PORT. Prints "listening on 127.0.0.1:PORT"
// once ready; runs until killed.

#include "core/util/unique_fd.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace {

using exai::core::UniqueFd;

sockaddr_in
loopback(int port)
{
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return address;
}

void
no_delay(int fd)
{
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// Sends all of `n` bytes; false when the peer is gone.
bool
send_all(int fd, const char* data, ssize_t n)
{
  while (n > 0) {
    const ssize_t sent = ::send(fd, data, static_cast<std::size_t>(n), MSG_NOSIGNAL);
    if (sent <= 0) {
      return false;
    }
    data += sent;
    n -= sent;
  }
  return true;
}

// Relays until either side closes.
void
relay(int client, int upstream)
{
  std::array<char, 65536> buffer{};
  std::array<pollfd, 2> fds{{{client, POLLIN, 0}, {upstream, POLLIN, 0}}};
  for (;;) {
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      return;
    }
    for (std::size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].revents == 0) {
        continue;
      }
      const ssize_t n = ::recv(fds[i].fd, buffer.data(), buffer.size(), 0);
      if (n <= 0 || !send_all(fds[1 - i].fd, buffer.data(), n)) {
        return;
      }
    }
  }
}

} // namespace

int
main(int argc, char** argv)
{
  if (argc != 2) {
    std::fprintf(stderr, "usage: exai_bench_relay UPSTREAM_PORT\n");
    return 2;
  }
  const int upstream_port = std::atoi(argv[1]);
  const UniqueFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in address = loopback(0);
  socklen_t length = sizeof address;
  if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      ::listen(listener.get(), 16) != 0 ||
      ::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    std::perror("exai_bench_relay: listen");
    return 1;
  }
  std::printf("listening on 127.0.0.1:%d\n", ntohs(address.sin_port));
  std::fflush(stdout);
  for (;;) {
    const UniqueFd client(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!client) {
      continue;
    }
    const UniqueFd upstream(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const sockaddr_in target = loopback(upstream_port);
    if (::connect(upstream.get(), reinterpret_cast<const sockaddr*>(&target), sizeof target) != 0) {
      std::perror("exai_bench_relay: connect");
      continue;
    }
    no_delay(client.get());
    no_delay(upstream.get());
    relay(client.get(), upstream.get());
  }
}
