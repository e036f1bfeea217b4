#include "core/ws/frame_codec.hpp"

#include <cassert>
#include <cstring>

namespace exai::core::ws {

namespace {

// RFC 6455 §5.2, the first two bytes of every frame.
constexpr std::uint8_t kFinBit = 0x80;
constexpr std::uint8_t kReservedBits = 0x70; // RSV1-3: no extension is ever negotiated
constexpr std::uint8_t kOpcodeBits = 0x0F;
constexpr std::uint8_t kMaskBit = 0x80;
constexpr std::uint8_t kLengthBits = 0x7F;
constexpr std::uint8_t kLength16 = 126; // a 16-bit length follows
constexpr std::uint8_t kLength64 = 127; // a 64-bit length follows
constexpr std::size_t kMaskKeyBytes = 4;
constexpr std::size_t kMaxHeaderBytes = 2 + 8 + kMaskKeyBytes;

// A reassembly buffer larger than this is freed once its message is
// delivered, so an idle connection does not pin the memory of its largest
// message; smaller ones are kept for the next message.
constexpr std::size_t kKeptMessageCapacity = std::size_t{16} * 1024;

constexpr bool
is_control(std::uint8_t opcode) noexcept
{
  return (opcode & 0x08) != 0;
}

constexpr bool
is_known(std::uint8_t opcode) noexcept
{
  return opcode <= 2 || (opcode >= 8 && opcode <= 10);
}

std::uint64_t
read_big_endian(const unsigned char* bytes, std::size_t count) noexcept
{
  std::uint64_t value = 0;
  for (std::size_t i = 0; i < count; ++i) {
    value = (value << 8) | bytes[i];
  }
  return value;
}

// (g++ 12 warns about designated initializers that leave a member out.)
Event
make_event(Event::Kind kind,
           Opcode opcode,
           std::string_view payload,
           std::uint16_t code = 0,
           std::string_view reason = {}) noexcept
{
  Event event;
  event.kind = kind;
  event.opcode = opcode;
  event.payload = payload;
  event.code = code;
  event.reason = reason;
  return event;
}

// `text` cut to at most `limit` bytes without splitting a UTF-8 character.
std::string_view
cut_at_character(std::string_view text, std::size_t limit) noexcept
{
  if (text.size() <= limit) {
    return text;
  }
  std::size_t cut = limit;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) {
    --cut; // text[cut] continues a character: cut before that character
  }
  return text.substr(0, cut);
}

} // namespace

bool
close_code_valid_on_wire(std::uint16_t code) noexcept
{
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
         (code >= 3000 && code <= 4999);
}

FrameDecoder::FrameDecoder(Role role, std::size_t max_message_bytes) noexcept
    : role_(role)
    , max_message_bytes_(max_message_bytes)
{
}

std::size_t
FrameDecoder::feed(std::span<char> input, EventSink& sink)
{
  stop_requested_ = false;
  std::size_t consumed = 0;
  while (!failed_) {
    const std::size_t frame = take_frame(input.subspan(consumed), sink);
    if (failed_) {
      break;
    }
    if (frame == 0) {
      return consumed; // the rest is an incomplete frame
    }
    consumed += frame;
    if (stop_requested_) {
      stop_requested_ = false;
      return consumed;
    }
  }
  return input.size();
}

// The checks that need only the first two bytes, in a fixed order so that the
// error reported does not depend on how many bytes have arrived.
std::string_view
FrameDecoder::first_bytes_violation(std::uint8_t byte0, std::uint8_t byte1) const noexcept
{
  const std::uint8_t opcode = byte0 & kOpcodeBits;
  if ((byte0 & kReservedBits) != 0) {
    return "reserved bits set";
  }
  if (!is_known(opcode)) {
    return "unknown opcode";
  }
  if (is_control(opcode) && (byte0 & kFinBit) == 0) {
    return "fragmented control frame";
  }
  if (is_control(opcode) && (byte1 & kLengthBits) > kMaxControlPayload) {
    return "control frame over 125 bytes";
  }
  const bool masked = (byte1 & kMaskBit) != 0;
  if (role_ == Role::server && !masked) {
    return "unmasked client frame";
  }
  if (role_ == Role::client && masked) {
    return "masked server frame";
  }
  if (opcode == static_cast<std::uint8_t>(Opcode::continuation) && !in_message_) {
    return "continuation frame without a message";
  }
  if ((opcode == static_cast<std::uint8_t>(Opcode::text) ||
       opcode == static_cast<std::uint8_t>(Opcode::binary)) &&
      in_message_) {
    return "data frame inside a fragmented message";
  }
  return {};
}

// Takes the frame at the start of `bytes`: returns its size once its event (if
// any) is delivered, or 0 when it is incomplete or violates the protocol (then
// failed_ is set).
std::size_t
FrameDecoder::take_frame(std::span<char> bytes, EventSink& sink)
{
  if (bytes.size() < 2) {
    return 0;
  }
  auto* const data = reinterpret_cast<unsigned char*>(bytes.data());
  if (const std::string_view violation = first_bytes_violation(data[0], data[1]);
      !violation.empty()) {
    fail(kCloseProtocolError, violation, sink);
    return 0;
  }
  const bool fin = (data[0] & kFinBit) != 0;
  const auto opcode = static_cast<Opcode>(data[0] & kOpcodeBits);
  const bool masked = (data[1] & kMaskBit) != 0;

  std::size_t header = 2;
  std::uint64_t length = data[1] & kLengthBits;
  if (length == kLength16) {
    if (bytes.size() < 4) {
      return 0;
    }
    length = read_big_endian(data + 2, 2);
    header = 4;
    if (length < kLength16) {
      fail(kCloseProtocolError, "length not minimally encoded", sink);
      return 0;
    }
  } else if (length == kLength64) {
    if (bytes.size() < 10) {
      return 0;
    }
    length = read_big_endian(data + 2, 8);
    header = 10;
    if ((length >> 63) != 0) {
      fail(kCloseProtocolError, "64-bit length with the top bit set", sink);
      return 0;
    }
    if (length <= 0xFFFF) {
      fail(kCloseProtocolError, "length not minimally encoded", sink);
      return 0;
    }
  }
  if (!is_control(static_cast<std::uint8_t>(opcode))) {
    // Before the payload arrives, so an oversized frame is never buffered.
    const std::size_t buffered = message_.size();
    if (buffered > max_message_bytes_ || length > max_message_bytes_ - buffered) {
      fail(kCloseTooBig, "message too big", sink);
      return 0;
    }
  }
  if (masked) {
    header += kMaskKeyBytes;
  }
  if (bytes.size() < header || bytes.size() - header < length) {
    return 0;
  }

  const std::span<char> payload = bytes.subspan(header, static_cast<std::size_t>(length));
  if (masked) {
    std::array<std::uint8_t, kMaskKeyBytes> key{};
    std::memcpy(key.data(), data + header - kMaskKeyBytes, kMaskKeyBytes);
    mask_payload(payload, key);
  }
  const std::string_view view(payload.data(), payload.size());
  if (is_control(static_cast<std::uint8_t>(opcode))) {
    take_control(opcode, view, sink);
  } else {
    take_data(opcode, fin, view, sink);
  }
  return header + payload.size();
}

void
FrameDecoder::take_data(Opcode opcode, bool fin, std::string_view payload, EventSink& sink)
{
  if (opcode != Opcode::continuation) {
    if (fin) { // the common case: a whole message in one frame, no copy
      if (opcode == Opcode::text && !valid_utf8(payload)) {
        fail(kCloseInvalidPayload, "invalid UTF-8 in a text message", sink);
        return;
      }
      deliver(make_event(Event::Kind::message, opcode, payload), sink);
      return;
    }
    in_message_ = true;
    message_opcode_ = opcode;
    message_utf8_.reset();
  }
  if (message_opcode_ == Opcode::text && !message_utf8_.feed(payload)) {
    fail(kCloseInvalidPayload, "invalid UTF-8 in a text message", sink);
    return;
  }
  message_.append(payload);
  if (!fin) {
    return;
  }
  if (message_opcode_ == Opcode::text && !message_utf8_.complete()) {
    fail(kCloseInvalidPayload, "invalid UTF-8 in a text message", sink);
    return;
  }
  deliver(make_event(Event::Kind::message, message_opcode_, message_), sink);
  end_message();
}

void
FrameDecoder::take_control(Opcode opcode, std::string_view payload, EventSink& sink)
{
  if (opcode == Opcode::ping || opcode == Opcode::pong) {
    const auto kind = opcode == Opcode::ping ? Event::Kind::ping : Event::Kind::pong;
    deliver(make_event(kind, opcode, payload), sink);
    return;
  }
  if (payload.empty()) {
    deliver(make_event(Event::Kind::close, opcode, {}, kCloseNoStatus), sink);
    return;
  }
  if (payload.size() == 1) {
    fail(kCloseProtocolError, "close frame with a 1-byte body", sink);
    return;
  }
  const auto code = static_cast<std::uint16_t>(
      read_big_endian(reinterpret_cast<const unsigned char*>(payload.data()), 2));
  if (!close_code_valid_on_wire(code)) {
    fail(kCloseProtocolError, "close code not valid on the wire", sink);
    return;
  }
  const std::string_view reason = payload.substr(2);
  if (!valid_utf8(reason)) {
    fail(kCloseInvalidPayload, "invalid UTF-8 in a close reason", sink);
    return;
  }
  deliver(make_event(Event::Kind::close, opcode, reason, code), sink);
}

void
FrameDecoder::deliver(const Event& event, EventSink& sink)
{
  try {
    sink.on_event(event);
  } catch (...) {
    // The caller cannot learn what was consumed: no frame can be trusted now.
    failed_ = true;
    end_message();
    throw;
  }
}

void
FrameDecoder::fail(std::uint16_t code, std::string_view reason, EventSink& sink)
{
  failed_ = true;
  end_message();
  deliver(make_event(Event::Kind::error, Opcode::continuation, {}, code, reason), sink);
}

void
FrameDecoder::end_message() noexcept
{
  in_message_ = false;
  if (message_.capacity() > kKeptMessageCapacity) {
    std::string().swap(message_);
  } else {
    message_.clear();
  }
}

void
append_header(std::string& out,
              Opcode opcode,
              bool fin,
              std::size_t length,
              Role role,
              std::array<std::uint8_t, 4> mask_key)
{
  assert(!is_control(static_cast<std::uint8_t>(opcode)) || (fin && length <= kMaxControlPayload));
  std::array<char, kMaxHeaderBytes> header{};
  std::size_t size = 0;
  const auto put = [&](std::uint64_t byte) { header[size++] = static_cast<char>(byte & 0xFF); };
  put((fin ? kFinBit : 0U) | static_cast<std::uint8_t>(opcode));
  const unsigned mask_bit = role == Role::client ? kMaskBit : 0U;
  if (length < kLength16) {
    put(mask_bit | length);
  } else if (length <= 0xFFFF) {
    put(mask_bit | kLength16);
    put(length >> 8);
    put(length);
  } else {
    put(mask_bit | kLength64);
    for (int shift = 56; shift >= 0; shift -= 8) {
      put(static_cast<std::uint64_t>(length) >> shift);
    }
  }
  if (role == Role::client) {
    for (const std::uint8_t byte : mask_key) {
      put(byte);
    }
  }
  out.append(header.data(), size);
}

void
mask_payload(std::span<char> payload,
             std::array<std::uint8_t, 4> mask_key,
             std::size_t offset) noexcept
{
  // The key rotated to `offset` and repeated over eight bytes: XORing words
  // in memory order needs no byte swapping on any endianness.
  std::array<unsigned char, 8> pattern{};
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    pattern[i] = mask_key[(offset + i) % mask_key.size()];
  }
  std::uint64_t word_key = 0;
  std::memcpy(&word_key, pattern.data(), sizeof word_key);

  char* const data = payload.data();
  const std::size_t size = payload.size();
  std::size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    std::uint64_t word = 0;
    std::memcpy(&word, data + i, sizeof word);
    word ^= word_key;
    std::memcpy(data + i, &word, sizeof word);
  }
  for (; i < size; ++i) {
    data[i] = static_cast<char>(static_cast<unsigned char>(data[i]) ^ pattern[i % 4]);
  }
}

std::string
encode_frame(Opcode opcode,
             std::string_view payload,
             Role role,
             std::array<std::uint8_t, 4> mask_key,
             bool fin)
{
  std::string frame;
  frame.reserve(kMaxHeaderBytes + payload.size());
  append_header(frame, opcode, fin, payload.size(), role, mask_key);
  const std::size_t start = frame.size();
  frame.append(payload);
  if (role == Role::client) {
    mask_payload(std::span<char>(frame.data() + start, payload.size()), mask_key);
  }
  return frame;
}

std::string
encode_close(std::uint16_t code,
             std::string_view reason,
             Role role,
             std::array<std::uint8_t, 4> mask_key)
{
  assert(close_code_valid_on_wire(code) || code == kCloseNoStatus);
  if (code == kCloseNoStatus) {
    return encode_frame(Opcode::close, {}, role, mask_key);
  }
  const std::string_view kept = cut_at_character(reason, kMaxCloseReason);
  std::string body;
  body.reserve(2 + kept.size());
  body += static_cast<char>(code >> 8);
  body += static_cast<char>(code & 0xFF);
  body.append(kept);
  return encode_frame(Opcode::close, body, role, mask_key);
}

} // namespace exai::core::ws
