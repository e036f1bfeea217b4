#include "net/clients/stress_connections.hpp"

#include <Poco/Exception.h>
#include <fmt/format.h>

#include <sys/epoll.h>
#include <unistd.h>

#include <array>
#include <stdexcept>
#include <string_view>

namespace exai::net {

namespace {

using core::stress::CallClass;
using Poco::Net::WebSocket;

constexpr int kTextFrame = WebSocket::FRAME_TEXT;
constexpr int kPongFrame =
    static_cast<int>(WebSocket::FRAME_FLAG_FIN) | static_cast<int>(WebSocket::FRAME_OP_PONG);
constexpr int kMaxFrameBytes = 64 * 1024 * 1024; // largest frame we accept from the daemon
constexpr int kMaxEvents = 256;
constexpr int kFramesPerWake = 16;
constexpr int kCloseAbnormal = 1006; // no close frame (RFC 6455)

} // namespace

std::unique_ptr<WebSocket>
stress_connect(const DaemonAddress& target, std::chrono::milliseconds timeout)
{
  auto ws = open_session(target, timeout, "exai-stress", {}, kMaxFrameBytes).socket;
  ws->setMaxPayloadSize(kMaxFrameBytes);
  return ws;
}

FrameKind
receive_frame(WebSocket& ws, Poco::Buffer<char>& buffer, int& flags)
{
  buffer.resize(0);
  const int n = ws.receiveFrame(buffer, flags);
  const int opcode = flags & WebSocket::FRAME_OP_BITMASK;
  if ((n == 0 && flags == 0) || opcode == WebSocket::FRAME_OP_CLOSE) {
    return FrameKind::closed;
  }
  if (opcode == WebSocket::FRAME_OP_PING) {
    ws.sendFrame(buffer.begin(), static_cast<int>(buffer.size()), kPongFrame);
    return FrameKind::control;
  }
  return opcode == WebSocket::FRAME_OP_PONG ? FrameKind::control : FrameKind::data;
}

bool
receive_data_frame(WebSocket& ws, Poco::Buffer<char>& buffer, int& flags)
{
  FrameKind kind = FrameKind::control;
  while (kind == FrameKind::control) {
    kind = receive_frame(ws, buffer, flags);
  }
  return kind == FrameKind::data;
}

void
send_text_frame(WebSocket& ws, const std::string& text)
{
  ws.sendFrame(text.data(), static_cast<int>(text.size()), kTextFrame);
}

StressConnections::StressConnections(const DaemonAddress& target,
                                     std::chrono::milliseconds io_timeout,
                                     StressLedger& ledger)
    : target_(target)
    , io_timeout_(io_timeout)
    , ledger_(ledger)
{
}

StressConnections::~StressConnections()
{
  if (epoll_ != -1) {
    ::close(epoll_);
  }
}

void
StressConnections::open_pool(std::size_t count)
{
  epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
  for (std::size_t i = 0; i < count; ++i) {
    try {
      auto conn = std::make_unique<Conn>();
      conn->ws = stress_connect(target_, io_timeout_);
      add(*conn);
      pool_.push_back(std::move(conn));
    } catch (const DaemonRefused& e) {
      note_refused(e.what());
    } catch (const DaemonUnreachable& e) {
      ++connect_failures_;
      if (first_connect_error_.empty()) {
        first_connect_error_ = e.what();
      }
    }
  }
}

void
StressConnections::add(Conn& conn)
{
  conn.id = ++next_id_;
  conn.fd = conn.ws->impl()->sockfd();
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.ptr = &conn;
  if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, conn.fd, &event) != 0) {
    throw std::runtime_error("epoll_ctl failed");
  }
}

// Takes `conn` out of the loop and closes it (abruptly: no close frame).
void
StressConnections::drop(Conn& conn) noexcept
{
  if (!conn.open) {
    return;
  }
  conn.open = false;
  ::epoll_ctl(epoll_, EPOLL_CTL_DEL, conn.fd, nullptr);
  try {
    conn.ws->close();
  } catch (const Poco::Exception&) {
    // Already gone.
  }
  if (conn.ephemeral) {
    if (auto it = ephemeral_.find(&conn); it != ephemeral_.end()) {
      graveyard_.push_back(std::move(it->second));
      ephemeral_.erase(it);
    }
  }
}

StressConnections::Conn*
StressConnections::open_ephemeral(CallClass kind)
{
  auto conn = std::make_unique<Conn>();
  try {
    conn->ws = stress_connect(target_, io_timeout_);
  } catch (const DaemonRefused& e) {
    note_refused(e.what());
    return nullptr;
  } catch (const DaemonUnreachable& e) {
    ledger_.violation("connect_failed",
                      fmt::format("{} connection: {}", core::stress::to_string(kind), e.what()));
    return nullptr;
  }
  conn->ephemeral = true;
  conn->kind = kind;
  add(*conn);
  Conn* raw = conn.get();
  ephemeral_.emplace(raw, std::move(conn));
  return raw;
}

StressConnections::Conn*
StressConnections::next_pool_conn()
{
  for (std::size_t tries = 0; tries < pool_.size(); ++tries) {
    Conn& conn = *pool_[next_conn_++ % pool_.size()];
    if (conn.open) {
      return &conn;
    }
  }
  return nullptr;
}

bool
StressConnections::send(Conn& conn, const std::string& text)
{
  try {
    send_text_frame(*conn.ws, text);
    return true;
  } catch (const Poco::Exception& e) {
    lost(conn, "send failed: " + e.displayText());
    return false;
  }
}

void
StressConnections::send_oversize(Conn& conn, const std::string& text)
{
  try {
    send_text_frame(*conn.ws, text);
  } catch (const Poco::Exception&) {
    // Told by the read that follows (a 1009 close or a reset).
  }
}

// The daemon closed `conn` (or it broke): every call still on it lost its result.
void
StressConnections::lost(Conn& conn, const std::string& reason)
{
  if (!conn.open) {
    return;
  }
  if (conn.ephemeral && conn.kind == CallClass::oversize) {
    finish_oversize(conn, "reset", reason);
    return;
  }
  ledger_.violation("connection_lost",
                    fmt::format("the daemon dropped a {} connection: {}",
                                conn.ephemeral ? core::stress::to_string(conn.kind) : "pool",
                                reason));
  ledger_.connection_lost(conn.id);
  drop(conn);
}

void
StressConnections::finish_oversize(Conn& conn,
                                   const std::string& outcome,
                                   const std::string& detail)
{
  ledger_.oversize_finished(outcome, detail, conn.oversize_sent, Clock::now());
  drop(conn);
}

void
StressConnections::poll(std::chrono::milliseconds tick)
{
  std::array<epoll_event, kMaxEvents> events{};
  const int n = ::epoll_wait(epoll_, events.data(), kMaxEvents, static_cast<int>(tick.count()));
  for (int i = 0; i < n; ++i) {
    auto* conn = static_cast<Conn*>(events.at(static_cast<std::size_t>(i)).data.ptr);
    // Frames that arrived together (progress, ack, result) are read
    // together: one wait per batch, not per frame. Bounded for fairness.
    for (int frames = 0; conn->open && frames < kFramesPerWake; ++frames) {
      on_readable(*conn);
      if (!conn->open || conn->ws->available() <= 0) {
        break;
      }
    }
  }
  graveyard_.clear();
}

void
StressConnections::on_readable(Conn& conn)
{
  int flags = 0;
  bool data = false;
  try {
    data = receive_data_frame(*conn.ws, buffer_, flags);
  } catch (const Poco::Exception& e) {
    lost(conn, e.displayText());
    return;
  }
  if (!data) {
    const bool close_frame = (flags & WebSocket::FRAME_OP_BITMASK) == WebSocket::FRAME_OP_CLOSE;
    int code = kCloseAbnormal;
    if (close_frame && buffer_.size() >= 2) {
      code = (static_cast<unsigned char>(buffer_[0]) << 8) | static_cast<unsigned char>(buffer_[1]);
    }
    if (conn.ephemeral && conn.kind == CallClass::oversize) {
      finish_oversize(conn, fmt::format("closed_{}", code), fmt::format("close code {}", code));
    } else {
      lost(conn, fmt::format("closed with code {}", code));
    }
    return;
  }
  if (conn.ephemeral && conn.kind == CallClass::oversize) {
    finish_oversize(conn, "answered", std::string(buffer_.begin(), buffer_.size()));
    return;
  }
  const std::string_view text(buffer_.begin(), buffer_.size());
  follow_up(conn, ledger_.on_frame(conn.id, text, Clock::now()));
}

void
StressConnections::follow_up(Conn& conn, const StressLedger::Followup& next)
{
  switch (next.action) {
  case StressLedger::Followup::Action::none:
    return;
  case StressLedger::Followup::Action::send:
    send(conn, next.frame);
    return;
  case StressLedger::Followup::Action::reattach: {
    Conn* other = next_pool_conn();
    drop(conn);
    if (other == nullptr) {
      ledger_.forget_call(next.request_id);
      return;
    }
    send(*other, ledger_.move_call(next.request_id, other->id));
    return;
  }
  }
}

void
StressConnections::check_oversize(Clock::time_point now)
{
  std::vector<Conn*> overdue;
  for (const auto& [raw, conn] : ephemeral_) {
    if (conn->open && conn->kind == CallClass::oversize &&
        now - conn->oversize_sent > io_timeout_) {
      overdue.push_back(raw);
    }
  }
  for (Conn* conn : overdue) {
    finish_oversize(*conn, "not_closed", "the connection stayed open");
  }
  graveyard_.clear();
}

void
StressConnections::close_all() noexcept
{
  for (const auto& conn : pool_) {
    if (conn->open) {
      try {
        conn->ws->shutdown(); // close frame 1000
      } catch (const Poco::Exception&) {
        // Closed anyway below.
      }
      drop(*conn);
    }
  }
  std::vector<Conn*> rest;
  for (const auto& [raw, conn] : ephemeral_) {
    rest.push_back(raw);
  }
  for (Conn* conn : rest) {
    drop(*conn);
  }
  graveyard_.clear();
}

void
StressConnections::note_refused(const std::string& why)
{
  ++refused_;
  if (refused_reason_.empty()) {
    refused_reason_ = why;
  }
}

} // namespace exai::net
