// fuzz_frame_codec: the input is what a peer sends on a WebSocket connection.
// Decodes it with a server-role and a client-role decoder, each fed at once,
// in two reads split at an input-derived offset and (for short inputs) one
// byte at a time, while the sink calls stop() and set_max_message_bytes() at
// events chosen from the input. Aborts unless all reads give the same events,
// unless each event keeps the decoder's promises, or unless every decoded
// message, ping, pong and close survives a round trip through the encoder.

#include "core/ws/frame_codec.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace ws = exai::core::ws;

namespace {

// Small enough that fragments within -max_len exceed it.
constexpr std::size_t kMaxMessageBytes = 4096;
// Byte-at-a-time feeding costs a feed() per byte: only for short inputs.
constexpr std::size_t kMaxBytewiseInput = 1024;

[[noreturn]] void
die(const char* what)
{
  std::fprintf(stderr, "fuzz_frame_codec: %s\n", what);
  std::abort();
}

void
require(bool ok, const char* what)
{
  if (!ok) {
    die(what);
  }
}

struct Seen {
  ws::Event::Kind kind = ws::Event::Kind::message;
  ws::Opcode opcode = ws::Opcode::continuation;
  std::string payload;
  std::uint16_t code = 0;
  std::string reason;

  bool operator==(const Seen&) const = default;
};

// Records events, checks what the decoder promises about each one, and
// after each event acts as `script` says (two bits per event): nothing,
// stop(), a new limit up to kMaxMessageBytes, or kMaxMessageBytes again.
class Recorder final : public ws::EventSink {
public:
  Recorder(ws::FrameDecoder& decoder, std::uint64_t script)
      : decoder_(decoder)
      , script_(script)
  {
  }

  void on_event(const ws::Event& event) override
  {
    check(event);
    events.push_back({event.kind,
                      event.opcode,
                      std::string(event.payload),
                      event.code,
                      std::string(event.reason)});
    const std::size_t step = events.size();
    switch ((script_ >> (2 * (step % 32))) & 3U) {
    case 1:
      decoder_.stop();
      break;
    case 2:
      decoder_.set_max_message_bytes((script_ ^ (step * 0x9E3779B97F4A7C15ULL)) %
                                     (kMaxMessageBytes + 1));
      break;
    case 3:
      decoder_.set_max_message_bytes(kMaxMessageBytes);
      break;
    default:
      break;
    }
  }

  std::vector<Seen> events;

private:
  void check(const ws::Event& event) const
  {
    using Kind = ws::Event::Kind;
    require(events.empty() || events.back().kind != Kind::error, "an event after an error");
    switch (event.kind) {
    case Kind::message:
      require(event.opcode == ws::Opcode::text || event.opcode == ws::Opcode::binary,
              "a message that is neither text nor binary");
      // The limit in force now is the one the message's last header passed.
      require(event.payload.size() <= decoder_.max_message_bytes(), "a message over the limit");
      require(event.opcode != ws::Opcode::text || ws::valid_utf8(event.payload),
              "a text message that is not UTF-8");
      break;
    case Kind::ping:
    case Kind::pong:
      require(event.payload.size() <= ws::kMaxControlPayload, "a control payload over 125 bytes");
      break;
    case Kind::close:
      require(ws::close_code_valid_on_wire(event.code) ||
                  (event.code == ws::kCloseNoStatus && event.payload.empty()),
              "a close code not valid on the wire");
      require(event.payload.size() <= ws::kMaxCloseReason && ws::valid_utf8(event.payload),
              "a bad close reason");
      break;
    case Kind::error:
      require(event.code == ws::kCloseProtocolError || event.code == ws::kCloseInvalidPayload ||
                  event.code == ws::kCloseTooBig,
              "an error with an unexpected close code");
      require(!event.reason.empty() && event.payload.empty(), "an error without a reason");
      break;
    }
  }

  ws::FrameDecoder& decoder_;
  std::uint64_t script_;
};

struct Decoded {
  std::vector<Seen> events;
  bool failed = false;
  std::size_t unconsumed = 0;

  bool operator==(const Decoded&) const = default;
};

// Feeds `wire` as an event loop does: the bytes up to each cut arrive in one
// read, appended to what the last feed() left unconsumed; after a stop() the
// loop feeds the rest again.
Decoded
decode(ws::Role role,
       std::string_view wire,
       const std::vector<std::size_t>& cuts,
       std::uint64_t script = 0)
{
  ws::FrameDecoder decoder(role, kMaxMessageBytes);
  Recorder sink(decoder, script);
  std::string pending;
  std::size_t read = 0;
  const auto arrive = [&](std::size_t end) {
    pending.append(wire.substr(read, end - read));
    read = end;
    for (;;) {
      const std::size_t used = decoder.feed(pending, sink);
      require(used <= pending.size(), "feed() consumed more than it was given");
      pending.erase(0, used);
      if (used == 0 || pending.empty()) {
        break;
      }
    }
  };
  for (const std::size_t cut : cuts) {
    arrive(cut);
  }
  arrive(wire.size());
  const bool errored = !sink.events.empty() && sink.events.back().kind == ws::Event::Kind::error;
  require(decoder.failed() == errored, "failed() disagrees with the events");
  require(!decoder.failed() || pending.empty(), "a failed decoder left bytes unconsumed");
  require(decoder.buffered_message_bytes() <= kMaxMessageBytes, "buffered over the limit");
  return {std::move(sink.events), decoder.failed(), pending.size()};
}

std::uint64_t
fnv1a(std::string_view bytes)
{
  std::uint64_t hash = 14695981039346656037ULL;
  for (const char c : bytes) {
    hash = (hash ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
  }
  return hash;
}

// Encodes `event` as the peer of a `decoder_role` decoder would and checks
// that decoding gives the event back. Messages with a payload are sent in two
// fragments when `hash` says so.
void
round_trip(const Seen& event, ws::Role decoder_role, std::uint64_t hash)
{
  const ws::Role sender = decoder_role == ws::Role::server ? ws::Role::client : ws::Role::server;
  const std::array<std::uint8_t, 4> key = {static_cast<std::uint8_t>(hash),
                                           static_cast<std::uint8_t>(hash >> 8),
                                           static_cast<std::uint8_t>(hash >> 16),
                                           static_cast<std::uint8_t>(hash >> 24)};
  std::string wire;
  switch (event.kind) {
  case ws::Event::Kind::message:
    if (!event.payload.empty() && (hash & 1) != 0) {
      const std::string_view payload = event.payload;
      const std::size_t split = (hash >> 32) % payload.size();
      wire = ws::encode_frame(event.opcode, payload.substr(0, split), sender, key, false) +
             ws::encode_frame(ws::Opcode::continuation, payload.substr(split), sender, key);
    } else {
      wire = ws::encode_frame(event.opcode, event.payload, sender, key);
    }
    break;
  case ws::Event::Kind::ping:
  case ws::Event::Kind::pong:
    wire = ws::encode_frame(event.opcode, event.payload, sender, key);
    break;
  case ws::Event::Kind::close:
    wire = ws::encode_close(event.code, event.payload, sender, key);
    break;
  case ws::Event::Kind::error:
    return;
  }
  require(decode(decoder_role, wire, {}) == Decoded{{event}, false, 0},
          "an encoded event did not decode to itself");
}

} // namespace

extern "C" int
LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
  const std::string_view wire(reinterpret_cast<const char*>(data), size);
  const std::uint64_t hash = fnv1a(wire);
  const std::vector<std::size_t> split = {static_cast<std::size_t>(hash % (size + 1))};
  std::vector<std::size_t> bytewise;
  if (size <= kMaxBytewiseInput) {
    for (std::size_t i = 1; i < size; ++i) {
      bytewise.push_back(i);
    }
  }
  for (const ws::Role role : {ws::Role::server, ws::Role::client}) {
    const Decoded whole = decode(role, wire, {}, hash);
    require(decode(role, wire, split, hash) == whole, "a split read changed the events");
    if (size <= kMaxBytewiseInput) {
      require(decode(role, wire, bytewise, hash) == whole,
              "byte-at-a-time reads changed the events");
    }
    for (const Seen& event : whole.events) {
      round_trip(event, role, hash);
    }
  }
  return 0;
}
