#include "net/clients/daemon_client.hpp"

#include <Poco/Buffer.h>
#include <Poco/Exception.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/WebSocket.h>

#include <algorithm>
#include <utility>

namespace exai::net {

namespace {

using nlohmann::json;
using Poco::Net::WebSocket;

constexpr auto kPoll = std::chrono::milliseconds(200);
constexpr auto kHelloTimeout = std::chrono::seconds(5);
constexpr auto kConnectTimeout = std::chrono::seconds(2);

Poco::Timespan
span(std::chrono::microseconds d)
{
  return Poco::Timespan(d.count());
}

// One frame (text or binary payload, or a control frame). n == 0 with no
// flags means the peer closed the TCP connection.
struct Frame {
  int flags = 0;
  int n = 0;
  std::string payload;
  int opcode() const { return flags & WebSocket::FRAME_OP_BITMASK; }
};

Frame
receive(WebSocket& socket)
{
  Poco::Buffer<char> buffer(0);
  Frame frame;
  frame.n = socket.receiveFrame(buffer, frame.flags);
  frame.payload.assign(buffer.begin(), buffer.size());
  return frame;
}

} // namespace

DaemonClient::DaemonClient(DaemonEndpoint endpoint,
                           DaemonClientCallbacks callbacks,
                           std::shared_ptr<spdlog::logger> log)
    : endpoint_(std::move(endpoint))
    , callbacks_(std::move(callbacks))
    , log_(std::move(log))
{
}

DaemonClient::~DaemonClient()
{
  stop();
}

void
DaemonClient::start()
{
  thread_ = std::thread([this] { run(); });
}

void
DaemonClient::stop() noexcept
{
  {
    const std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) {
    thread_.join();
  }
}

bool
DaemonClient::send(const std::string& frame) noexcept
{
  std::shared_ptr<WebSocket> socket;
  {
    const std::lock_guard lock(mutex_);
    socket = socket_;
  }
  if (!socket) {
    return false;
  }
  try {
    const std::lock_guard lock(send_mutex_);
    socket->sendFrame(frame.data(), static_cast<int>(frame.size()), WebSocket::FRAME_TEXT);
    return true;
  } catch (const Poco::Exception& e) {
    log_->warn("daemon send failed error=\"{}\"", e.displayText());
  } catch (const std::exception& e) {
    log_->warn("daemon send failed error=\"{}\"", e.what());
  }
  return false;
}

std::string
DaemonClient::last_error() const
{
  const std::lock_guard lock(mutex_);
  return last_error_;
}

void
DaemonClient::set_error(std::string error)
{
  const std::lock_guard lock(mutex_);
  last_error_ = std::move(error);
}

bool
DaemonClient::sleep_for(std::chrono::milliseconds delay)
{
  std::unique_lock lock(mutex_);
  return !wake_.wait_for(lock, delay, [this] { return stopping_; });
}

std::shared_ptr<WebSocket>
DaemonClient::connect_once(Poco::Net::HTTPClientSession& session)
{
  session.setTimeout(span(kConnectTimeout));
  Poco::Net::HTTPRequest request(
      Poco::Net::HTTPRequest::HTTP_GET, endpoint_.path, Poco::Net::HTTPMessage::HTTP_1_1);
  Poco::Net::HTTPResponse response;
  std::shared_ptr<WebSocket> socket;
  try {
    socket = std::make_shared<WebSocket>(session, request, response);
  } catch (const Poco::Net::WebSocketException& e) {
    set_error("WebSocket upgrade refused (HTTP " + std::to_string(response.getStatus()) + ")");
    return nullptr;
  }
  socket->setMaxPayloadSize(static_cast<int>(std::min<std::size_t>(endpoint_.max_bytes, 1U << 30)));
  json hello = {{"op", "hello"}, {"token", endpoint_.token}, {"client_name", "exai-mcp"}};
  std::string previous;
  {
    const std::lock_guard lock(mutex_);
    previous = session_id_;
  }
  if (!previous.empty()) {
    hello["session_id"] = previous;
  }
  const std::string text = hello.dump();
  socket->sendFrame(text.data(), static_cast<int>(text.size()), WebSocket::FRAME_TEXT);
  socket->setReceiveTimeout(span(kHelloTimeout));
  Frame frame = receive(*socket);
  while (frame.opcode() == WebSocket::FRAME_OP_PING) {
    frame = receive(*socket);
  }
  const json ack = json::parse(frame.payload, nullptr, false);
  if (frame.n == 0 || ack.is_discarded() || !ack.is_object() ||
      ack.value("op", "") != "hello_ack") {
    set_error("no hello_ack from the daemon");
    return nullptr;
  }
  if (ack.value("ok", false) != true || !ack.contains("session_id") ||
      !ack["session_id"].is_string()) {
    set_error("hello refused: " + ack.value("error", std::string("unknown")) +
              (ack.value("error", "") == "unauthorized" ? " (check EXAI_WS_TOKEN)" : ""));
    return nullptr;
  }
  const std::string session_id = ack["session_id"].get<std::string>();
  const bool resumed = !previous.empty() && session_id == previous;
  socket->setReceiveTimeout(span(kPoll));
  {
    const std::lock_guard lock(mutex_);
    session_id_ = session_id;
    last_error_.clear();
    socket_ = socket;
  }
  connected_ = true;
  log_->info(
      "daemon connected host={} port={} resumed={}", endpoint_.host, endpoint_.port, resumed);
  if (callbacks_.on_connected) {
    callbacks_.on_connected(session_id, resumed);
  }
  return socket;
}

void
DaemonClient::read_loop(const std::shared_ptr<WebSocket>& socket)
{
  for (;;) {
    {
      const std::lock_guard lock(mutex_);
      if (stopping_) {
        return;
      }
    }
    Frame frame;
    try {
      frame = receive(*socket);
    } catch (const Poco::TimeoutException&) {
      continue;
    }
    if (frame.n == 0 && frame.flags == 0) {
      set_error("the daemon closed the connection");
      return;
    }
    switch (frame.opcode()) {
    case WebSocket::FRAME_OP_CLOSE:
      set_error("the daemon closed the connection");
      return;
    case WebSocket::FRAME_OP_PING: {
      const std::lock_guard lock(send_mutex_);
      socket->sendFrame(frame.payload.data(),
                        static_cast<int>(frame.payload.size()),
                        static_cast<int>(WebSocket::FRAME_FLAG_FIN) | WebSocket::FRAME_OP_PONG);
      continue;
    }
    case WebSocket::FRAME_OP_PONG:
      continue;
    default:
      break;
    }
    const json parsed = json::parse(frame.payload, nullptr, false);
    if (parsed.is_discarded() || !parsed.is_object()) {
      log_->warn("daemon sent a frame that is not a JSON object bytes={}", frame.payload.size());
      continue;
    }
    log_->trace("daemon frame op={}", parsed.value("op", ""));
    if (callbacks_.on_frame) {
      callbacks_.on_frame(parsed);
    }
  }
}

void
DaemonClient::run()
{
  auto backoff = kMinBackoff;
  bool reported = false;
  for (;;) {
    {
      const std::lock_guard lock(mutex_);
      if (stopping_) {
        return;
      }
    }
    std::shared_ptr<WebSocket> socket;
    try {
      Poco::Net::HTTPClientSession session(endpoint_.host, endpoint_.port);
      socket = connect_once(session);
      if (socket) {
        backoff = kMinBackoff;
        reported = false;
        read_loop(socket);
      }
    } catch (const Poco::Exception& e) {
      set_error(e.displayText());
    } catch (const std::exception& e) {
      set_error(e.what());
    }
    if (socket) {
      {
        const std::lock_guard lock(mutex_);
        socket_.reset();
      }
      connected_ = false;
      try {
        const std::lock_guard lock(send_mutex_);
        socket->close();
      } catch (const Poco::Exception&) {
        // already gone
      }
      bool stopping = false;
      {
        const std::lock_guard lock(mutex_);
        stopping = stopping_;
      }
      if (stopping) {
        log_->debug("daemon connection closed");
      } else {
        log_->warn("daemon disconnected error=\"{}\"", last_error());
      }
      if (callbacks_.on_disconnected) {
        callbacks_.on_disconnected();
      }
    } else if (!reported) {
      reported = true;
      log_->warn("daemon unreachable host={} port={} error=\"{}\" (retrying)",
                 endpoint_.host,
                 endpoint_.port,
                 last_error());
    }
    if (!sleep_for(backoff)) {
      return;
    }
    backoff = std::min(backoff * 2, kMaxBackoff);
  }
}

} // namespace exai::net
