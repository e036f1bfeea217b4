#pragma once

#include "core/util/interface.hpp"
#include "core/ws/utf8.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

// An incremental RFC 6455 frame codec: no sockets, no extensions. The decoder
// parses frames in a buffer the caller owns; the encoder appends frames to a
// std::string.
namespace exai::core::ws {

enum class Opcode : std::uint8_t {
  continuation = 0,
  text = 1,
  binary = 2,
  close = 8,
  ping = 9,
  pong = 10
};

// Which end of the connection this side is. A server requires every frame
// from its peer to be masked and sends unmasked frames; a client the reverse.
enum class Role { server, client };

// Close codes the daemon uses (RFC 6455 §7.4.1, IANA registry).
inline constexpr std::uint16_t kCloseNormal = 1000;
inline constexpr std::uint16_t kCloseGoingAway = 1001;
inline constexpr std::uint16_t kCloseProtocolError = 1002;
inline constexpr std::uint16_t kCloseNoStatus = 1005; // never on the wire: a close without a body
inline constexpr std::uint16_t kCloseInvalidPayload = 1007;
inline constexpr std::uint16_t kClosePolicy = 1008;
inline constexpr std::uint16_t kCloseTooBig = 1009;
inline constexpr std::uint16_t kCloseInternal = 1011;

// Payload limits of control frames: 125 bytes, of which a close code takes 2.
inline constexpr std::size_t kMaxControlPayload = 125;
inline constexpr std::size_t kMaxCloseReason = 123;

// True for the codes an endpoint may send in a close frame: 1000-1003,
// 1007-1014 (registered by RFC 6455 and IANA) and 3000-4999 (libraries,
// applications). 1004-1006 and 1015 are reserved; the rest is unassigned.
bool close_code_valid_on_wire(std::uint16_t code) noexcept;

// One thing the decoder found. Views point into the caller's input buffer or
// into the decoder's reassembly buffer: valid only during on_event().
struct Event {
  enum class Kind { message, ping, pong, close, error };

  Kind kind = Kind::message;
  // message: text or binary (the first fragment's opcode); ping, pong, close:
  // that opcode; error: continuation (meaningless).
  Opcode opcode = Opcode::continuation;
  // message, ping, pong: the (unmasked) data; close: the reason (valid UTF-8,
  // possibly empty); error: empty.
  std::string_view payload;
  // close: the peer's code (valid on the wire), or kCloseNoStatus when the
  // frame had no body; error: the code to close the connection with
  // (kCloseProtocolError, kCloseInvalidPayload or kCloseTooBig).
  std::uint16_t code = 0;
  // error: a short static description for logs, e.g. "unmasked client frame".
  std::string_view reason;
};

// Receives the decoder's events, synchronously, in wire order. on_event()
// should not throw: if it does, the exception leaves feed() and the decoder
// is failed (failed() is true) without reporting an error event.
class EventSink : public Interface {
public:
  virtual void on_event(const Event& event) = 0;
};

// Parses the frames a peer sends over one connection, enforcing RFC 6455:
//  - 1002 (protocol error): RSV1/2/3 set; an unknown opcode; a frame masked
//    wrongly for the role; a 64-bit length with the top bit set; a length not
//    in its shortest form; a control frame without FIN or over 125 bytes; a
//    continuation with no message in progress; a text or binary frame while
//    one is; a close body of 1 byte; a close code not valid on the wire.
//  - 1009 (too big): as soon as a header announces a payload that takes the
//    message (all its fragments so far) over max_message_bytes.
//  - 1007 (invalid payload): a text message or close reason that is not UTF-8.
//    Fragmented text is checked per fragment, so it fails at the first
//    fragment that cannot be the start of valid text.
// Control frames may arrive between the fragments of a message. Events do not
// depend on how the bytes are split between feed() calls.
//
// One per connection; not thread-safe. Unfragmented messages cost no copy and
// no allocation; a fragmented one is reassembled in a buffer the decoder owns.
class FrameDecoder {
public:
  // `max_message_bytes` bounds a message's payload (all fragments together).
  FrameDecoder(Role role, std::size_t max_message_bytes) noexcept;

  // Parses every complete frame at the start of `input`, unmasking payloads in
  // place, and calls sink.on_event() for each message (once reassembled),
  // ping, pong and close, in order. Returns the bytes consumed: whole frames
  // only. The rest, left untouched, is the start of a frame that the caller
  // must present again, with more bytes appended, at the start of the next
  // `input`. On a violation it reports one error event, the decoder becomes
  // failed, and feed() returns input.size(); from then on feed() consumes
  // everything and reports nothing. Not reentrant: the sink must not call
  // feed(). Throws std::bad_alloc when reassembly cannot allocate.
  std::size_t feed(std::span<char> input, EventSink& sink);

  // The bound checked on the next frame header (callable from a callback). A
  // smaller bound than what a fragmented message holds already fails that
  // message at its next fragment.
  void set_max_message_bytes(std::size_t limit) noexcept { max_message_bytes_ = limit; }
  std::size_t max_message_bytes() const noexcept { return max_message_bytes_; }

  // From a callback: feed() returns right after the current event, with that
  // frame consumed; the next feed() parses again. No effect elsewhere.
  void stop() noexcept { stop_requested_ = true; }

  // True once an error event has been reported (or the sink threw).
  bool failed() const noexcept { return failed_; }

  // Bytes of a fragmented message received so far (for memory accounting); 0
  // when no message is being reassembled.
  std::size_t buffered_message_bytes() const noexcept { return message_.size(); }

private:
  std::size_t take_frame(std::span<char> bytes, EventSink& sink);
  void take_data(Opcode opcode, bool fin, std::string_view payload, EventSink& sink);
  void take_control(Opcode opcode, std::string_view payload, EventSink& sink);
  std::string_view first_bytes_violation(std::uint8_t byte0, std::uint8_t byte1) const noexcept;
  void deliver(const Event& event, EventSink& sink);
  void fail(std::uint16_t code, std::string_view reason, EventSink& sink);
  void end_message() noexcept;

  Role role_;
  std::size_t max_message_bytes_;
  bool failed_ = false;
  bool stop_requested_ = false;
  bool in_message_ = false; // a fragmented message is being reassembled
  Opcode message_opcode_ = Opcode::binary;
  Utf8Validator message_utf8_; // text messages only
  std::string message_;        // the fragments so far
};

// Appends the header of a frame with a `length`-byte payload, in the shortest
// length form. Role::server writes it unmasked; Role::client sets the MASK bit
// and writes `mask_key`, and the caller then masks the payload it appends with
// mask_payload(). Precondition: control frames have fin set and length <= 125.
void append_header(std::string& out,
                   Opcode opcode,
                   bool fin,
                   std::size_t length,
                   Role role = Role::server,
                   std::array<std::uint8_t, 4> mask_key = {});

// XORs `payload` with `mask_key` (RFC 6455 §5.3), eight bytes at a time.
// `offset` is the position of payload[0] within the frame's payload, so a
// payload can be masked in pieces. Its own inverse.
void mask_payload(std::span<char> payload,
                  std::array<std::uint8_t, 4> mask_key,
                  std::size_t offset = 0) noexcept;

// A whole frame: header plus payload, masked with `mask_key` for Role::client.
std::string encode_frame(Opcode opcode,
                         std::string_view payload,
                         Role role = Role::server,
                         std::array<std::uint8_t, 4> mask_key = {},
                         bool fin = true);

// A close frame carrying `code` and `reason`, the reason cut to 123 bytes at a
// UTF-8 character boundary (it is assumed to be UTF-8). kCloseNoStatus gives a
// close frame without a body (the reason is dropped). Precondition: `code` is
// valid on the wire or kCloseNoStatus.
std::string encode_close(std::uint16_t code,
                         std::string_view reason,
                         Role role = Role::server,
                         std::array<std::uint8_t, 4> mask_key = {});

} // namespace exai::core::ws
