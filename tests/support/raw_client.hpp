#pragma once

// A raw TCP client for tests that must misbehave on purpose: send half a
// frame, trickle a request head, never read, send frames no library would
// build. Frames are built and read with exai's own codec (client role).
// Blocking socket with deadlines; not thread-safe.

#include "core/ws/frame_codec.hpp"

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace exai::test {

class RawClient {
public:
  using Deadline = std::chrono::steady_clock::time_point;

  struct HttpReply {
    int status = 0;
    std::map<std::string, std::string> headers;
    std::string body;
  };

  // One frame from the server.
  struct Frame {
    core::ws::Event::Kind kind = core::ws::Event::Kind::message;
    std::string payload;
    std::uint16_t code = 0; // close
  };

  // Connects to 127.0.0.1:port. `receive_buffer` > 0 sets SO_RCVBUF first (a
  // small one makes a slow reader quickly). Throws std::system_error.
  explicit RawClient(std::uint16_t port, int receive_buffer = 0);
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;
  ~RawClient();

  // Sends every byte (blocking). False when the peer is gone.
  bool send(std::string_view bytes);

  // Bytes that arrive before `deadline` (at least one read); empty at the
  // deadline or when the peer closed (then closed() is true).
  std::string receive(Deadline deadline);

  // True once the server closed (EOF or reset) before `deadline`; reads and
  // discards data meanwhile.
  bool wait_closed(Deadline deadline);

  bool closed() const noexcept { return closed_; }

  // Sends an HTTP/1.1 request and reads one response (Content-Length or
  // close-delimited body).
  std::optional<HttpReply> http(std::string_view method,
                                std::string_view path,
                                const std::map<std::string, std::string>& headers = {},
                                std::string_view body = {},
                                Deadline deadline = in(std::chrono::seconds(5)));
  std::optional<HttpReply> read_http_reply(Deadline deadline);

  // The WebSocket handshake; true on 101.
  bool upgrade(const std::map<std::string, std::string>& headers = {},
               Deadline deadline = in(std::chrono::seconds(5)));

  // A masked client frame. `rsv` goes into bits 4-6 of the first byte.
  static std::string frame(core::ws::Opcode opcode,
                           std::string_view payload,
                           bool fin = true,
                           std::uint8_t rsv = 0,
                           bool masked = true);
  bool send_frame(core::ws::Opcode opcode, std::string_view payload, bool fin = true);
  bool send_text(std::string_view text) { return send_frame(core::ws::Opcode::text, text); }

  // The next frame from the server; nullopt at the deadline or on EOF.
  std::optional<Frame> next_frame(Deadline deadline);
  // The next text message parsed as JSON that satisfies `accept`.
  std::optional<std::string> next_text(Deadline deadline);
  // Frames until a close frame arrives; its code, or nullopt (EOF / deadline).
  std::optional<std::uint16_t> wait_close_frame(Deadline deadline);

  int fd() const noexcept { return fd_; }
  static Deadline in(std::chrono::milliseconds d) { return std::chrono::steady_clock::now() + d; }

private:
  int fd_ = -1;
  std::uint16_t port_;
  bool closed_ = false;
  std::string pending_; // received, not yet parsed
  std::vector<Frame> frames_;
  core::ws::FrameDecoder decoder_{core::ws::Role::client, std::size_t{1} << 30U};
};

} // namespace exai::test
