#include "tests/support/raw_client.hpp"

#include <Poco/Net/HTTPResponse.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <sstream>
#include <system_error>

namespace exai::test {

namespace {

namespace ws = core::ws;

int
millis_until(RawClient::Deadline deadline)
{
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  return static_cast<int>(std::max<std::chrono::milliseconds::rep>(left.count(), 0));
}

class Collect final : public ws::EventSink {
public:
  explicit Collect(std::vector<RawClient::Frame>& out)
      : out_(out)
  {
  }
  void on_event(const ws::Event& event) override
  {
    out_.push_back(RawClient::Frame{event.kind, std::string(event.payload), event.code});
  }

private:
  std::vector<RawClient::Frame>& out_;
};

} // namespace

RawClient::RawClient(std::uint16_t port, int receive_buffer)
    : port_(port)
{
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    throw std::system_error(errno, std::generic_category(), "socket");
  }
  if (receive_buffer > 0) {
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
  }
  const int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    const int error = errno;
    ::close(fd_);
    throw std::system_error(error, std::generic_category(), "connect");
  }
}

RawClient::~RawClient()
{
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

bool
RawClient::send(std::string_view bytes)
{
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      closed_ = true;
      return false;
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

std::string
RawClient::receive(Deadline deadline)
{
  pollfd p{fd_, POLLIN, 0};
  if (::poll(&p, 1, millis_until(deadline)) <= 0) {
    return {};
  }
  char buffer[65536];
  const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
  if (n <= 0) {
    closed_ = true;
    return {};
  }
  return std::string(buffer, static_cast<std::size_t>(n));
}

bool
RawClient::wait_closed(Deadline deadline)
{
  while (!closed_ && std::chrono::steady_clock::now() < deadline) {
    (void)receive(deadline);
  }
  return closed_;
}

std::optional<RawClient::HttpReply>
RawClient::read_http_reply(Deadline deadline)
{
  std::string data = std::move(pending_);
  pending_.clear();
  std::size_t head_end = std::string::npos;
  while ((head_end = data.find("\r\n\r\n")) == std::string::npos) {
    const std::string more = receive(deadline);
    if (more.empty()) {
      return std::nullopt;
    }
    data += more;
  }
  HttpReply reply;
  Poco::Net::HTTPResponse response;
  std::istringstream in(data.substr(0, head_end + 4));
  response.read(in);
  reply.status = response.getStatus();
  for (const auto& [name, value] : response) {
    reply.headers[name] = value;
  }
  std::string body = data.substr(head_end + 4);
  if (response.hasContentLength()) {
    const auto length = static_cast<std::size_t>(response.getContentLength64());
    while (body.size() < length) {
      const std::string more = receive(deadline);
      if (more.empty()) {
        return std::nullopt;
      }
      body += more;
    }
    pending_ = body.substr(length);
    body.resize(length);
  } else if (reply.status != 101) {
    while (!closed_ && std::chrono::steady_clock::now() < deadline) {
      body += receive(deadline);
    }
  } else {
    pending_ = body; // frames right behind the 101
    body.clear();
  }
  reply.body = std::move(body);
  return reply;
}

std::optional<RawClient::HttpReply>
RawClient::http(std::string_view method,
                std::string_view path,
                const std::map<std::string, std::string>& headers,
                std::string_view body,
                Deadline deadline)
{
  std::string request = std::string(method) + " " + std::string(path) + " HTTP/1.1\r\n";
  if (headers.count("Host") == 0) {
    request += "Host: 127.0.0.1:" + std::to_string(port_) + "\r\n";
  }
  for (const auto& [name, value] : headers) {
    request += name + ": " + value + "\r\n";
  }
  if (!body.empty() || method == "POST") {
    request += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  }
  request += "\r\n";
  request += body;
  if (!send(request)) {
    return std::nullopt;
  }
  return read_http_reply(deadline);
}

bool
RawClient::upgrade(const std::map<std::string, std::string>& headers, Deadline deadline)
{
  std::map<std::string, std::string> all = {{"Upgrade", "websocket"},
                                            {"Connection", "Upgrade"},
                                            {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
                                            {"Sec-WebSocket-Version", "13"}};
  for (const auto& [name, value] : headers) {
    all[name] = value;
  }
  const auto reply = http("GET", "/", all, {}, deadline);
  return reply && reply->status == 101;
}

std::string
RawClient::frame(
    ws::Opcode opcode, std::string_view payload, bool fin, std::uint8_t rsv, bool masked)
{
  // Built by hand, not with the codec's encoder: tests need frames that
  // break the rules the encoder asserts (fragmented or oversized control
  // frames, RSV bits, missing masks).
  constexpr std::array<std::uint8_t, 4> kMask{0x12, 0x34, 0x56, 0x78};
  std::string out;
  out += static_cast<char>((fin ? 0x80U : 0U) | static_cast<unsigned>((rsv & 0x7U) << 4U) |
                           static_cast<unsigned>(opcode));
  const std::uint8_t mask_bit = masked ? 0x80U : 0U;
  const std::size_t n = payload.size();
  if (n < 126) {
    out += static_cast<char>(mask_bit | n);
  } else if (n < 65536) {
    out += static_cast<char>(mask_bit | 126U);
    out += static_cast<char>((n >> 8U) & 0xFFU);
    out += static_cast<char>(n & 0xFFU);
  } else {
    out += static_cast<char>(mask_bit | 127U);
    for (int shift = 56; shift >= 0; shift -= 8) {
      out += static_cast<char>((static_cast<std::uint64_t>(n) >> static_cast<unsigned>(shift)) &
                               0xFFU);
    }
  }
  if (masked) {
    out.append(reinterpret_cast<const char*>(kMask.data()), kMask.size());
  }
  const std::size_t start = out.size();
  out.append(payload);
  if (masked) {
    ws::mask_payload(std::span<char>(out.data() + start, payload.size()), kMask);
  }
  return out;
}

bool
RawClient::send_frame(ws::Opcode opcode, std::string_view payload, bool fin)
{
  return send(frame(opcode, payload, fin));
}

std::optional<RawClient::Frame>
RawClient::next_frame(Deadline deadline)
{
  for (;;) {
    if (!frames_.empty()) {
      Frame first = std::move(frames_.front());
      frames_.erase(frames_.begin());
      return first;
    }
    if (!pending_.empty()) {
      Collect sink(frames_);
      const std::size_t used =
          decoder_.feed(std::span<char>(pending_.data(), pending_.size()), sink);
      pending_.erase(0, used);
      if (!frames_.empty()) {
        continue;
      }
    }
    const std::string more = receive(deadline);
    if (more.empty()) {
      return std::nullopt;
    }
    pending_ += more;
  }
}

std::optional<std::string>
RawClient::next_text(Deadline deadline)
{
  while (auto f = next_frame(deadline)) {
    if (f->kind == ws::Event::Kind::message) {
      return f->payload;
    }
    if (f->kind == ws::Event::Kind::close) {
      return std::nullopt;
    }
  }
  return std::nullopt;
}

std::optional<std::uint16_t>
RawClient::wait_close_frame(Deadline deadline)
{
  while (auto f = next_frame(deadline)) {
    if (f->kind == ws::Event::Kind::close) {
      return f->code;
    }
  }
  return std::nullopt;
}

} // namespace exai::test
