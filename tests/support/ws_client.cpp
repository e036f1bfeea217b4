#include "tests/support/ws_client.hpp"

#include <Poco/Exception.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/NetException.h>

#include <algorithm>
#include <stdexcept>

namespace exai::test {

namespace {

using Poco::Net::WebSocket;

constexpr int kFin = static_cast<int>(WebSocket::FRAME_FLAG_FIN);

struct Upgrade {
  std::unique_ptr<Poco::Net::HTTPClientSession> session;
  std::unique_ptr<WebSocket> socket;
  int status = 0;
};

Upgrade
try_upgrade(std::uint16_t port, const WsClientOptions& options)
{
  Upgrade up;
  up.session = std::make_unique<Poco::Net::HTTPClientSession>(options.host, port);
  up.session->setTimeout(Poco::Timespan(
      std::chrono::duration_cast<std::chrono::microseconds>(options.connect_timeout).count()));
  Poco::Net::HTTPRequest request(
      Poco::Net::HTTPRequest::HTTP_GET, options.path, Poco::Net::HTTPMessage::HTTP_1_1);
  for (const auto& [name, value] : options.headers) {
    request.set(name, value);
  }
  Poco::Net::HTTPResponse response;
  try {
    up.socket = std::make_unique<WebSocket>(*up.session, request, response);
    up.status = Poco::Net::HTTPResponse::HTTP_SWITCHING_PROTOCOLS;
  } catch (const Poco::Net::WebSocketException&) {
    up.status = response.getStatus();
  }
  return up;
}

} // namespace

WsClient::WsClient(std::uint16_t port, WsClientOptions options)
    : options_(std::move(options))
{
  auto up = try_upgrade(port, options_);
  if (!up.socket) {
    throw std::runtime_error("WebSocket upgrade refused with HTTP status " +
                             std::to_string(up.status));
  }
  session_ = std::move(up.session);
  socket_ = std::move(up.socket);
  // Frames of any size the tests send or expect.
  socket_->setMaxPayloadSize(1 << 30);
}

int
WsClient::upgrade_status(std::uint16_t port, WsClientOptions options)
{
  auto up = try_upgrade(port, options);
  if (up.socket) {
    try {
      up.socket->shutdown();
      up.socket->close();
    } catch (const Poco::Exception&) {
    }
  }
  return up.status;
}

void
WsClient::send_frame(std::string_view payload, int flags)
{
  socket_->sendFrame(payload.data(), static_cast<int>(payload.size()), flags);
}

void
WsClient::send_text(std::string_view text)
{
  send_frame(text, WebSocket::FRAME_TEXT);
}

void
WsClient::send_binary(std::string_view data)
{
  send_frame(data, WebSocket::FRAME_BINARY);
}

void
WsClient::send_json(const nlohmann::json& frame)
{
  send_text(frame.dump());
}

std::optional<WsFrame>
WsClient::recv_frame(Deadline deadline)
{
  while (!closed_) {
    const auto left = std::chrono::duration_cast<std::chrono::microseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return std::nullopt;
    }
    socket_->setReceiveTimeout(Poco::Timespan(std::max<std::int64_t>(left.count(), 1000)));
    Poco::Buffer<char> buffer(0);
    int flags = 0;
    int n = 0;
    try {
      n = socket_->receiveFrame(buffer, flags);
    } catch (const Poco::TimeoutException&) {
      return std::nullopt;
    } catch (const Poco::Exception&) {
      closed_ = true;
      close_code_ = close_code_.value_or(1006);
      return std::nullopt;
    }
    if (n == 0 && flags == 0) {
      closed_ = true;
      close_code_ = close_code_.value_or(1006);
      return std::nullopt;
    }
    WsFrame frame{flags, std::string(buffer.begin(), buffer.size())};
    switch (frame.opcode()) {
    case WebSocket::FRAME_OP_CLOSE:
      closed_ = true;
      if (frame.payload.size() >= 2) {
        close_code_ = (static_cast<unsigned char>(frame.payload[0]) << 8) |
                      static_cast<unsigned char>(frame.payload[1]);
        close_reason_ = frame.payload.substr(2);
      } else {
        close_code_ = 1005;
      }
      if (!close_sent_) {
        close_sent_ = true;
        try {
          send_frame(frame.payload.substr(0, 2), kFin | WebSocket::FRAME_OP_CLOSE);
        } catch (const Poco::Exception&) {
        }
      }
      return std::nullopt;
    case WebSocket::FRAME_OP_PING:
      if (options_.auto_pong) {
        try {
          send_frame(frame.payload, kFin | WebSocket::FRAME_OP_PONG);
        } catch (const Poco::Exception&) {
        }
      }
      continue;
    case WebSocket::FRAME_OP_PONG:
      continue;
    default:
      return frame;
    }
  }
  return std::nullopt;
}

std::optional<nlohmann::json>
WsClient::recv_json(Deadline deadline)
{
  auto frame = recv_frame(deadline);
  if (!frame) {
    return std::nullopt;
  }
  auto value = nlohmann::json::parse(frame->payload, nullptr, false);
  if (value.is_discarded()) {
    return std::nullopt;
  }
  return value;
}

std::optional<nlohmann::json>
WsClient::recv_until(const std::function<bool(const nlohmann::json&)>& predicate, Deadline deadline)
{
  while (auto frame = recv_json(deadline)) {
    if (predicate(*frame)) {
      return frame;
    }
  }
  return std::nullopt;
}

std::optional<int>
WsClient::wait_close(Deadline deadline)
{
  while (!closed_) {
    if (!recv_frame(deadline) && !closed_) {
      return std::nullopt; // deadline
    }
  }
  return close_code_;
}

std::optional<nlohmann::json>
WsClient::hello(const std::optional<std::string>& token, Deadline deadline)
{
  nlohmann::json frame{{"op", "hello"}};
  if (token) {
    frame["token"] = *token;
  }
  send_json(frame);
  return recv_until([](const nlohmann::json& f) { return f.value("op", "") == "hello_ack"; },
                    deadline);
}

void
WsClient::close()
{
  if (closed_) {
    return;
  }
  try {
    close_sent_ = true;
    socket_->shutdown(WebSocket::WS_NORMAL_CLOSE);
    wait_close(deadline_in(std::chrono::seconds(2)));
  } catch (const Poco::Exception&) {
  }
  closed_ = true;
}

} // namespace exai::test
