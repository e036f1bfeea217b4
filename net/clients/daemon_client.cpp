#include "net/clients/daemon_client.hpp"

#include "net/protocol/op_protocol.hpp"
#include "net/util/poco_time.hpp"

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
constexpr auto kConnectTimeout = std::chrono::seconds(2);

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

DaemonClient::DaemonClient(DaemonAddress address,
                           std::size_t max_bytes,
                           DaemonClientCallbacks callbacks,
                           std::shared_ptr<spdlog::logger> log)
    : address_(std::move(address))
    , max_bytes_(max_bytes)
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
DaemonClient::connect_once(bool& refused)
{
  std::string previous;
  {
    const std::lock_guard lock(mutex_);
    previous = session_id_;
  }
  OpenedSession opened;
  try {
    opened = open_session(address_, kConnectTimeout, "exai-mcp", previous, max_bytes_);
  } catch (const DaemonRefused& e) {
    refused = true;
    set_error(e.what());
    if (e.definite() && callbacks_.on_refused) {
      callbacks_.on_refused(e.what());
    }
    return nullptr;
  } catch (const DaemonUnreachable& e) {
    set_error(e.what());
    return nullptr;
  }
  std::shared_ptr<WebSocket> socket = std::move(opened.socket);
  socket->setReceiveTimeout(to_timespan(kPoll));
  {
    const std::lock_guard lock(mutex_);
    session_id_ = opened.session_id;
    last_error_.clear();
    socket_ = socket;
  }
  connected_ = true;
  log_->info(
      "daemon connected host={} port={} resumed={}", address_.host, address_.port, opened.resumed);
  if (callbacks_.on_connected) {
    callbacks_.on_connected(opened.session_id, opened.resumed);
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
    auto frame_or_problem = protocol::parse_frame(frame.payload);
    if (std::holds_alternative<protocol::FrameProblem>(frame_or_problem)) {
      log_->warn("daemon sent a frame that is not a JSON object bytes={}", frame.payload.size());
      continue;
    }
    const json& parsed = std::get<json>(frame_or_problem);
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
      bool refused = false;
      socket = connect_once(refused);
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
                 address_.host,
                 address_.port,
                 last_error());
    }
    if (!sleep_for(backoff)) {
      return;
    }
    backoff = std::min(backoff * 2, kMaxBackoff);
  }
}

} // namespace exai::net
