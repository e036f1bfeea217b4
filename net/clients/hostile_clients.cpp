#include "net/clients/hostile_clients.hpp"

#include "core/util/enum_names.hpp"
#include "core/ws/frame_codec.hpp"

#include <Poco/Net/HTTPRequest.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace exai::net {

// Outside the anonymous namespace: HostileClients::State, a class with
// external linkage, holds one.
enum class HostileKind { half_frame, pre_hello, slow_reader, deep_json, oversize, trickler };

namespace {

namespace ws = core::ws;

using Kind = HostileKind;
constexpr std::array<Kind, 6> kKinds = {Kind::half_frame,
                                        Kind::pre_hello,
                                        Kind::slow_reader,
                                        Kind::deep_json,
                                        Kind::oversize,
                                        Kind::trickler};

std::string
name(Kind kind)
{
  static constexpr core::EnumNames<Kind, 6> kNames{
      {"half_frame", "pre_hello", "slow_reader", "deep_json", "oversize", "trickler"}, "?"};
  return std::string(kNames(kind));
}

constexpr std::array<std::uint8_t, 4> kMask{0x1f, 0x2e, 0x3d, 0x4c};

std::string
client_frame(ws::Opcode opcode, std::string_view payload)
{
  std::string frame;
  ws::append_header(frame, opcode, true, payload.size(), ws::Role::client, kMask);
  const std::size_t start = frame.size();
  frame.append(payload);
  ws::mask_payload(std::span<char>(frame.data() + start, payload.size()), kMask);
  return frame;
}

// A well-formed request head, formatted by Poco.
std::string
request_head(const DaemonAddress& target, bool upgrade)
{
  Poco::Net::HTTPRequest request(upgrade ? Poco::Net::HTTPRequest::HTTP_GET
                                         : Poco::Net::HTTPRequest::HTTP_GET,
                                 upgrade ? target.path : "/health",
                                 Poco::Net::HTTPMessage::HTTP_1_1);
  request.setHost(target.host, target.port);
  if (upgrade) {
    request.set("Upgrade", "websocket");
    request.set("Connection", "Upgrade");
    request.set("Sec-WebSocket-Key", "aG9zdGlsZS1jbGllbnQtMQ==");
    request.set("Sec-WebSocket-Version", "13");
  } else {
    request.set("X-Trickle", std::string(400, 't'));
  }
  std::ostringstream out;
  request.write(out);
  return out.str();
}

int
connect_to(const DaemonAddress& target, bool small_buffer)
{
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (::getaddrinfo(target.host.c_str(), std::to_string(target.port).c_str(), &hints, &found) !=
      0) {
    return -1;
  }
  int fd = ::socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd >= 0 && small_buffer) {
    const int size = 4096;
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  }
  if (fd >= 0 && ::connect(fd, found->ai_addr, found->ai_addrlen) != 0) {
    ::close(fd);
    fd = -1;
  }
  ::freeaddrinfo(found);
  return fd;
}

} // namespace

struct HostileClients::State {
  struct Conn {
    Kind kind = Kind::half_frame;
    int fd = -1;
    int stage = 0; // 0 closed, 1 awaiting 101 / trickling, 2 active
    std::string in;
    std::size_t sent = 0; // trickler: bytes of the head sent
    bool oversize_sent = false;
  };
  std::vector<Conn> conns;
  std::map<std::string, std::map<std::string, std::size_t>> counts;
  std::string trickle_head;
  std::string hello = client_frame(ws::Opcode::text, R"({"op":"hello","client_name":"hostile"})");
  std::string list_tools = client_frame(ws::Opcode::text, R"({"op":"list_tools"})");
  std::string deep_call;
};

HostileClients::HostileClients(HostileOptions options)
    : options_(std::move(options))
    , state_(std::make_unique<State>())
{
  state_->trickle_head = request_head(options_.target, false);
  const std::string deep = std::string(75000, '[') + std::string(75000, ']');
  state_->deep_call = client_frame(
      ws::Opcode::text,
      R"({"op":"call_tool","request_id":"hostile-deep","name":"version","arguments":{"a":)" + deep +
          "}}");
  for (const Kind kind : kKinds) {
    for (std::size_t i = 0; i < options_.per_kind; ++i) {
      State::Conn conn;
      conn.kind = kind;
      state_->conns.push_back(std::move(conn));
    }
    state_->counts[name(kind)] = {{"opened", 0}, {"cut", 0}};
  }
}

HostileClients::~HostileClients()
{
  (void)stop();
}

void
HostileClients::start(std::chrono::milliseconds settle)
{
  running_ = true;
  thread_ = std::thread([this] { run(); });
  // Three passes: connect, upgrade answered, first hostile act.
  const auto until = std::chrono::steady_clock::now() + settle;
  while (rounds_.load() < 3 && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(options_.pace / 4);
  }
}

nlohmann::json
HostileClients::stop()
{
  running_ = false;
  if (thread_.joinable()) {
    thread_.join();
  }
  for (auto& c : state_->conns) {
    if (c.fd >= 0) {
      ::close(c.fd);
      c.fd = -1;
    }
  }
  return state_->counts;
}

void
HostileClients::run() noexcept
{
  auto& s = *state_;
  const auto send_all = [](int fd, std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n <= 0) {
        return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK); // full: not cut
      }
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  };
  const auto cut = [&](State::Conn& c) {
    ::close(c.fd);
    c.fd = -1;
    c.stage = 0;
    ++s.counts[name(c.kind)]["cut"];
  };
  while (running_) {
    for (auto& c : s.conns) {
      if (!running_) {
        break;
      }
      if (c.stage == 0) {
        c.fd = connect_to(options_.target, c.kind == Kind::slow_reader);
        if (c.fd < 0) {
          continue;
        }
        ++s.counts[name(c.kind)]["opened"];
        c.in.clear();
        c.sent = 0;
        c.oversize_sent = false;
        c.stage = 1;
        if (c.kind != Kind::trickler && !send_all(c.fd, request_head(options_.target, true))) {
          cut(c);
        }
        continue;
      }
      if (c.kind == Kind::trickler) {
        // One byte per round; the daemon answers 408 and closes at its
        // whole-request deadline.
        char probe[512];
        const ssize_t n = ::recv(c.fd, probe, sizeof probe, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
          cut(c);
        } else if (c.sent < s.trickle_head.size() &&
                   !send_all(c.fd, std::string_view(s.trickle_head).substr(c.sent++, 1))) {
          cut(c);
        }
        continue;
      }
      if (c.stage == 1) {
        char buffer[4096];
        const ssize_t n = ::recv(c.fd, buffer, sizeof buffer, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
          cut(c);
          continue;
        }
        if (n > 0) {
          c.in.append(buffer, static_cast<std::size_t>(n));
        }
        if (c.in.find("\r\n\r\n") == std::string::npos) {
          continue;
        }
        if (c.in.rfind("HTTP/1.1 101", 0) != 0) {
          cut(c);
          continue;
        }
        c.stage = 2;
        bool ok = true;
        switch (c.kind) {
        case Kind::half_frame:
          ok = send_all(c.fd, client_frame(ws::Opcode::text, std::string(64, 'h')).substr(0, 3));
          break;
        case Kind::slow_reader:
        case Kind::deep_json:
        case Kind::oversize:
          ok = send_all(c.fd, s.hello);
          break;
        default:
          break;
        }
        if (!ok) {
          cut(c);
        }
        continue;
      }
      // Active.
      bool ok = true;
      if (c.kind != Kind::slow_reader) {
        char buffer[65536];
        const ssize_t n = ::recv(c.fd, buffer, sizeof buffer, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
          cut(c);
          continue;
        }
        if (n > 0 && c.kind == Kind::deep_json &&
            std::string_view(buffer, static_cast<std::size_t>(n)).find("VALIDATION_ERROR") !=
                std::string_view::npos) {
          ++s.counts[name(c.kind)]["answered"];
        }
      }
      switch (c.kind) {
      case Kind::slow_reader:
        ok = send_all(c.fd, s.list_tools);
        break;
      case Kind::deep_json:
        ok = send_all(c.fd, s.deep_call);
        break;
      case Kind::oversize:
        if (!c.oversize_sent) {
          std::string header;
          ws::append_header(
              header, ws::Opcode::text, true, options_.max_bytes + 1, ws::Role::client, kMask);
          ok = send_all(c.fd, header + "{");
          c.oversize_sent = true;
        }
        break;
      default:
        break;
      }
      if (!ok) {
        cut(c);
      }
    }
    ++rounds_;
    std::this_thread::sleep_for(options_.pace);
  }
}

} // namespace exai::net
