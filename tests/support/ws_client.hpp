#pragma once

// A blocking WebSocket test client on Poco, for e2e and net tests: connect to
// 127.0.0.1:port (optionally with extra headers such as Origin), send text or
// binary frames, receive JSON with deadlines, and read the close code.
// Not thread-safe: one client per thread.

#include "tests/support/eventually.hpp"

#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/WebSocket.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace exai::test {

struct WsClientOptions {
  std::string host = "127.0.0.1";
  std::string path = "/";
  std::map<std::string, std::string> headers; // e.g. {"Origin", "http://evil.example"}
  std::chrono::milliseconds connect_timeout{5000};
  bool auto_pong = true; // answer server pings while receiving
};

// One received frame.
struct WsFrame {
  int flags = 0; // Poco::Net::WebSocket frame flags + opcode
  std::string payload;

  int opcode() const { return flags & Poco::Net::WebSocket::FRAME_OP_BITMASK; }
};

class WsClient {
public:
  // Connects and completes the upgrade. Throws std::runtime_error (with the
  // HTTP status in the message) when the server refuses.
  explicit WsClient(std::uint16_t port, WsClientOptions options = {});

  // Attempts an upgrade and returns the HTTP status: 101 on success (the
  // connection is then closed), else the refusal's status (e.g. 403).
  static int upgrade_status(std::uint16_t port, WsClientOptions options = {});

  void send_text(std::string_view text);
  void send_binary(std::string_view data);
  void send_json(const nlohmann::json& frame);
  // Any frame: `flags` as for Poco::Net::WebSocket::sendFrame.
  void send_frame(std::string_view payload, int flags);

  // The next data frame (pings answered when auto_pong, pongs skipped), or
  // nullopt at the deadline or when the server closed (then closed() is
  // true and close_code() holds its status).
  std::optional<WsFrame> recv_frame(Deadline deadline);

  // The next data frame parsed as JSON; nullopt at the deadline, on close, or
  // when the frame is not JSON.
  std::optional<nlohmann::json> recv_json(Deadline deadline);

  // The first JSON frame satisfying `predicate` (others are skipped).
  std::optional<nlohmann::json>
  recv_until(const std::function<bool(const nlohmann::json&)>& predicate, Deadline deadline);

  // Frames until the server's close frame; its status code, or nullopt when
  // the deadline passed first. A connection cut without a close frame gives 1006.
  std::optional<int> wait_close(Deadline deadline);

  // Sends hello (with `token` when given) and returns the hello_ack.
  std::optional<nlohmann::json> hello(const std::optional<std::string>& token = std::nullopt,
                                      Deadline deadline = deadline_in(std::chrono::seconds(5)));

  // Sends a close frame (1000) and waits briefly for the server's.
  void close();

  bool closed() const { return closed_; }
  std::optional<int> close_code() const { return close_code_; }
  std::string close_reason() const { return close_reason_; }
  void set_auto_pong(bool on) { options_.auto_pong = on; }
  Poco::Net::WebSocket& socket() { return *socket_; }

private:
  WsClientOptions options_;
  std::unique_ptr<Poco::Net::HTTPClientSession> session_;
  std::unique_ptr<Poco::Net::WebSocket> socket_;
  bool closed_ = false;
  bool close_sent_ = false;
  std::optional<int> close_code_;
  std::string close_reason_;
};

} // namespace exai::test
