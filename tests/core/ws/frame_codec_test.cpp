#include "core/ws/frame_codec.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <ostream>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace ws = exai::core::ws;
using ws::Event;
using ws::FrameDecoder;
using ws::Opcode;
using ws::Role;

namespace {

using Key = std::array<std::uint8_t, 4>;
constexpr Key kKey = {0x37, 0xFA, 0x21, 0x3D};
constexpr std::size_t kLargeLimit = std::size_t{1} << 20;

// An event with its views copied out, so it outlives the callback.
struct Seen {
  Event::Kind kind = Event::Kind::message;
  Opcode opcode = Opcode::continuation;
  std::string payload;
  std::uint16_t code = 0;
  std::string reason;

  bool operator==(const Seen&) const = default;
};

std::ostream&
operator<<(std::ostream& out, const Seen& seen)
{
  static constexpr std::array<const char*, 5> kKinds = {
      "message", "ping", "pong", "close", "error"};
  out << kKinds.at(static_cast<std::size_t>(seen.kind)) << " opcode=" << int(seen.opcode)
      << " code=" << seen.code << " reason=\"" << seen.reason << "\" payload("
      << seen.payload.size() << ")=";
  for (const char c : std::string_view(seen.payload).substr(0, 24)) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x20 && byte < 0x7F) {
      out << c;
    } else {
      out << "\\x"
          << "0123456789abcdef"[byte >> 4] << "0123456789abcdef"[byte & 0xF];
    }
  }
  return out;
}

Seen
message(Opcode opcode, std::string payload)
{
  return {Event::Kind::message, opcode, std::move(payload), 0, {}};
}

Seen
control(Event::Kind kind, std::string payload)
{
  const Opcode opcode = kind == Event::Kind::ping ? Opcode::ping : Opcode::pong;
  return {kind, opcode, std::move(payload), 0, {}};
}

Seen
closed(std::uint16_t code, std::string reason)
{
  return {Event::Kind::close, Opcode::close, std::move(reason), code, {}};
}

Seen
violation(std::uint16_t code, std::string reason)
{
  return {Event::Kind::error, Opcode::continuation, {}, code, std::move(reason)};
}

// Records every event; `hook` runs after recording (to call stop() and the like).
class Recorder final : public ws::EventSink {
public:
  void on_event(const Event& event) override
  {
    events.push_back({event.kind,
                      event.opcode,
                      std::string(event.payload),
                      event.code,
                      std::string(event.reason)});
    payload_addresses.push_back(event.payload.data());
    if (hook) {
      hook(event);
    }
  }

  std::vector<Seen> events;
  std::vector<const char*> payload_addresses;
  std::function<void(const Event&)> hook;
};

// What a decoder reported for some wire bytes, and what it left unconsumed.
struct Decoded {
  std::vector<Seen> events;
  bool failed = false;
  std::size_t unconsumed = 0;

  bool operator==(const Decoded&) const = default;
};

std::ostream&
operator<<(std::ostream& out, const Decoded& decoded)
{
  out << "failed=" << decoded.failed << " unconsumed=" << decoded.unconsumed << " events:";
  for (const Seen& seen : decoded.events) {
    out << "\n  " << seen;
  }
  return out;
}

// Feeds `wire` the way an event loop does: the bytes up to each cut arrive in
// one read, are appended to what the last feed() left, and the consumed
// prefix is dropped.
Decoded
decode_in_reads(Role role,
                std::string_view wire,
                const std::vector<std::size_t>& cuts,
                std::size_t limit = kLargeLimit)
{
  FrameDecoder decoder(role, limit);
  Recorder sink;
  std::string pending;
  std::size_t read = 0;
  bool overran = false;
  const auto arrive = [&](std::size_t end) {
    pending.append(wire.substr(read, end - read));
    read = end;
    const std::size_t used = decoder.feed(pending, sink);
    overran = overran || used > pending.size();
    pending.erase(0, used);
  };
  for (const std::size_t cut : cuts) {
    arrive(cut);
  }
  arrive(wire.size());
  REQUIRE_FALSE(overran);
  return {sink.events, decoder.failed(), pending.size()};
}

Decoded
decode(Role role, std::string_view wire, std::size_t limit = kLargeLimit)
{
  return decode_in_reads(role, wire, {}, limit);
}

Decoded
decode_byte_by_byte(Role role, std::string_view wire, std::size_t limit = kLargeLimit)
{
  std::vector<std::size_t> cuts(wire.size());
  for (std::size_t i = 0; i < cuts.size(); ++i) {
    cuts[i] = i;
  }
  return decode_in_reads(role, wire, cuts, limit);
}

// A frame as a client sends it (masked), for server-role decoders.
std::string
from_client(Opcode opcode, std::string_view payload, bool fin = true)
{
  return ws::encode_frame(opcode, payload, Role::client, kKey, fin);
}

// A frame as a server sends it (unmasked), for client-role decoders.
std::string
from_server(Opcode opcode, std::string_view payload, bool fin = true)
{
  return ws::encode_frame(opcode, payload, Role::server, {}, fin);
}

std::string
bytes(std::initializer_list<unsigned> values)
{
  std::string out;
  for (const unsigned value : values) {
    out += static_cast<char>(value);
  }
  return out;
}

std::string
key_bytes()
{
  return bytes({kKey[0], kKey[1], kKey[2], kKey[3]});
}

std::string
close_body(std::uint16_t code, std::string_view reason)
{
  return bytes({unsigned(code >> 8), unsigned(code & 0xFF)}) + std::string(reason);
}

// Random but reproducible frame sequences, with the events they must give.
class ScenarioGenerator {
public:
  struct Scenario {
    std::string wire;
    std::vector<Seen> expected;
  };

  ScenarioGenerator(std::uint32_t seed, Role decoder_role)
      : rng_(seed)
      , sender_(decoder_role == Role::server ? Role::client : Role::server)
  {
  }

  Scenario next()
  {
    Scenario scenario;
    const std::size_t count = 1 + below(6);
    for (std::size_t i = 0; i < count; ++i) {
      add_one(scenario);
    }
    if (chance(20)) {
      constexpr std::array<std::uint16_t, 9> kCodes = {
          1000, 1001, 1002, 1003, 1007, 1011, 1014, 3000, 4999};
      const std::uint16_t code = kCodes.at(below(kCodes.size()));
      std::string reason = text(below(124), 123);
      frame(scenario, Opcode::close, close_body(code, reason));
      scenario.expected.push_back(closed(code, reason));
    }
    return scenario;
  }

  std::size_t below(std::size_t bound) { return rng_() % bound; }
  bool chance(unsigned percent) { return below(100) < percent; }

private:
  void add_one(Scenario& scenario)
  {
    const std::size_t kind = below(10);
    if (kind < 4) {
      const std::string payload = text(data_size(), SIZE_MAX);
      frame(scenario, Opcode::text, payload);
      scenario.expected.push_back(message(Opcode::text, payload));
    } else if (kind < 6) {
      const std::string payload = binary(data_size());
      frame(scenario, Opcode::binary, payload);
      scenario.expected.push_back(message(Opcode::binary, payload));
    } else if (kind < 8) {
      add_fragmented(scenario, chance(50) ? Opcode::text : Opcode::binary);
    } else {
      add_ping_or_pong(scenario);
    }
  }

  void add_fragmented(Scenario& scenario, Opcode opcode)
  {
    const std::size_t size = data_size();
    const std::string payload = opcode == Opcode::text ? text(size, SIZE_MAX) : binary(size);
    std::vector<std::size_t> cuts = {0, payload.size()};
    for (std::size_t pieces = 1 + below(4); pieces > 1; --pieces) {
      cuts.push_back(below(payload.size() + 1)); // may split a UTF-8 character
    }
    std::sort(cuts.begin(), cuts.end());
    for (std::size_t i = 0; i + 1 < cuts.size(); ++i) {
      const bool last = i + 2 == cuts.size();
      frame(scenario,
            i == 0 ? opcode : Opcode::continuation,
            std::string_view(payload).substr(cuts[i], cuts[i + 1] - cuts[i]),
            last);
      if (!last && chance(30)) {
        add_ping_or_pong(scenario); // delivered before the message
      }
    }
    scenario.expected.push_back(message(opcode, payload));
  }

  void add_ping_or_pong(Scenario& scenario)
  {
    const bool ping = chance(50);
    const std::string payload = binary(below(ws::kMaxControlPayload + 1));
    frame(scenario, ping ? Opcode::ping : Opcode::pong, payload);
    scenario.expected.push_back(control(ping ? Event::Kind::ping : Event::Kind::pong, payload));
  }

  void frame(Scenario& scenario, Opcode opcode, std::string_view payload, bool fin = true)
  {
    const Key key = {
        std::uint8_t(rng_()), std::uint8_t(rng_()), std::uint8_t(rng_()), std::uint8_t(rng_())};
    scenario.wire += ws::encode_frame(opcode, payload, sender_, key, fin);
  }

  // Mostly small, sometimes in the 16-bit length form, rarely across the
  // 16-bit/64-bit boundary.
  std::size_t data_size()
  {
    const std::size_t roll = below(100);
    if (roll < 70) {
      return below(126);
    }
    if (roll < 99) {
      return 126 + below(400);
    }
    return 65530 + below(12);
  }

  // Valid UTF-8 of about `size` bytes (never more than `limit`).
  std::string text(std::size_t size, std::size_t limit)
  {
    static constexpr std::array<std::string_view, 10> kCharacters = {"a",
                                                                     "Z",
                                                                     " ",
                                                                     "\x7F",
                                                                     "\xC3\xA9",
                                                                     "\xDF\xBF",
                                                                     "\xE2\x82\xAC",
                                                                     "\xED\x9F\xBF",
                                                                     "\xF0\x9D\x84\x9E",
                                                                     "\xF4\x8F\xBF\xBF"};
    std::string out;
    while (out.size() < size) {
      const std::string_view character = kCharacters[below(kCharacters.size())];
      if (out.size() + character.size() > limit) {
        break;
      }
      out += character;
    }
    return out;
  }

  std::string binary(std::size_t size)
  {
    std::string out(size, '\0');
    for (char& c : out) {
      c = static_cast<char>(rng_());
    }
    return out;
  }

  std::mt19937 rng_; // fully specified by the standard: the same sequence everywhere
  Role sender_;
};

} // namespace

// ---- UTF-8 -----------------------------------------------------------------

TEST_CASE("valid_utf8 accepts well-formed text up to U+10FFFF", "[core][ws]")
{
  const std::string text =
      GENERATE(as<std::string>{},
               "",
               "plain ASCII longer than one eight-byte word",
               "\x7F",
               "\xC2\x80",         // U+0080, smallest two-byte
               "\xDF\xBF",         // U+07FF
               "\xE0\xA0\x80",     // U+0800, smallest three-byte
               "\xED\x9F\xBF",     // U+D7FF, just below the surrogates
               "\xEE\x80\x80",     // U+E000, just above them
               "\xEF\xBF\xBF",     // U+FFFF
               "\xF0\x90\x80\x80", // U+10000, smallest four-byte
               "\xF4\x8F\xBF\xBF", // U+10FFFF, the largest
               "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9D\x84\x9E and more ASCII after");
  CAPTURE(text);
  CHECK(ws::valid_utf8(text));
}

TEST_CASE("valid_utf8 rejects overlong encodings", "[core][ws]")
{
  const std::string text = GENERATE(as<std::string>{},
                                    "\xC0\x80",         // U+0000 in two bytes
                                    "\xC1\xBF",         // U+007F in two bytes
                                    "\xE0\x80\x80",     // U+0000 in three bytes
                                    "\xE0\x9F\xBF",     // U+07FF in three bytes
                                    "\xF0\x80\x80\x80", // U+0000 in four bytes
                                    "\xF0\x8F\xBF\xBF", // U+FFFF in four bytes
                                    "ok so far \xC0\xAF");
  CAPTURE(text);
  CHECK_FALSE(ws::valid_utf8(text));
}

TEST_CASE("valid_utf8 rejects UTF-16 surrogates", "[core][ws]")
{
  const std::string text = GENERATE(as<std::string>{},
                                    "\xED\xA0\x80",              // U+D800
                                    "\xED\xAD\xBF",              // U+DB7F
                                    "\xED\xB0\x80",              // U+DC00
                                    "\xED\xBF\xBF",              // U+DFFF
                                    "\xED\xA0\xBD\xED\xB2\xA9"); // a CESU-8 pair
  CAPTURE(text);
  CHECK_FALSE(ws::valid_utf8(text));
}

TEST_CASE("valid_utf8 rejects code points above U+10FFFF and bytes never used", "[core][ws]")
{
  const std::string text = GENERATE(as<std::string>{},
                                    "\xF4\x90\x80\x80", // U+110000
                                    "\xF5\x80\x80\x80",
                                    "\xF7\xBF\xBF\xBF",
                                    "\xF8\x88\x80\x80\x80", // five-byte form
                                    "\xFC\x84\x80\x80\x80\x80",
                                    "\xFE",
                                    "\xFF");
  CAPTURE(text);
  CHECK_FALSE(ws::valid_utf8(text));
}

TEST_CASE("valid_utf8 rejects stray continuation bytes and truncated characters", "[core][ws]")
{
  const std::string text = GENERATE(as<std::string>{},
                                    "\x80",
                                    "abc\xBF",
                                    "\xC3", // truncated at the end
                                    "\xE2\x82",
                                    "\xF0\x9D\x84",
                                    "\xC3"
                                    "A", // a lead byte then ASCII
                                    "\xE2\x28\xA1",
                                    "\xF0\x9D\xC3\xA9"); // a new character too early
  CAPTURE(text);
  CHECK_FALSE(ws::valid_utf8(text));
}

TEST_CASE("the incremental validator agrees with valid_utf8 at every split", "[core][ws]")
{
  const std::string text = GENERATE(as<std::string>{},
                                    "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9D\x84\x9E",
                                    "\xF4\x8F\xBF\xBF\xED\x9F\xBF",
                                    "ab\xED\xA0\x80",
                                    "x\xF0\x8F\xBF\xBF",
                                    "\xE2\x82");
  CAPTURE(text);
  for (std::size_t split = 0; split <= text.size(); ++split) {
    CAPTURE(split);
    ws::Utf8Validator validator;
    const bool fed = validator.feed(std::string_view(text).substr(0, split)) &&
                     validator.feed(std::string_view(text).substr(split));
    CHECK((fed && validator.complete()) == ws::valid_utf8(text));
  }
}

TEST_CASE("the incremental validator fails at the first byte that rules text out", "[core][ws]")
{
  ws::Utf8Validator validator;
  CHECK(validator.feed("ok \xE2\x82")); // a character in progress is not an error yet
  CHECK_FALSE(validator.complete());
  CHECK(validator.feed("\xAC"));
  CHECK(validator.complete());
  CHECK_FALSE(validator.feed("\xED\xA0")); // a surrogate is certain at its second byte
  CHECK_FALSE(validator.feed("plain"));    // errors are sticky
  CHECK_FALSE(validator.complete());
  validator.reset();
  CHECK(validator.feed("plain"));
  CHECK(validator.complete());
}

// ---- close codes -------------------------------------------------------------

TEST_CASE("close codes valid on the wire follow RFC 6455 and the IANA registry", "[core][ws]")
{
  const auto [code, valid] = GENERATE(table<int, bool>({
      {0, false},   {999, false},  {1000, true},  {1001, true},  {1002, true},
      {1003, true}, {1004, false}, {1005, false}, {1006, false}, {1007, true},
      {1008, true}, {1009, true},  {1010, true},  {1011, true},  {1012, true},
      {1013, true}, {1014, true},  {1015, false}, {1016, false}, {2999, false},
      {3000, true}, {4000, true},  {4999, true},  {5000, false}, {65535, false},
  }));
  CAPTURE(code);
  CHECK(ws::close_code_valid_on_wire(static_cast<std::uint16_t>(code)) == valid);
}

// ---- encoder -----------------------------------------------------------------

TEST_CASE("append_header uses the shortest length form", "[core][ws]")
{
  const auto [length, expected] = GENERATE(table<std::size_t, std::string>({
      {0, bytes({0x82, 0x00})},
      {125, bytes({0x82, 0x7D})},
      {126, bytes({0x82, 0x7E, 0x00, 0x7E})},
      {65535, bytes({0x82, 0x7E, 0xFF, 0xFF})},
      {65536, bytes({0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00})},
      {std::size_t{0x0102030405060708}, bytes({0x82, 0x7F, 1, 2, 3, 4, 5, 6, 7, 8})},
  }));
  CAPTURE(length);
  std::string out = "prefix";
  ws::append_header(out, Opcode::binary, true, length);
  CHECK(out == "prefix" + expected);
}

TEST_CASE("a client header sets the mask bit and carries the key", "[core][ws]")
{
  std::string out;
  ws::append_header(out, Opcode::text, false, 5, Role::client, kKey);
  CHECK(out == bytes({0x01, 0x85}) + key_bytes());
  out.clear();
  ws::append_header(out, Opcode::ping, true, 125, Role::client, kKey);
  CHECK(out == bytes({0x89, 0xFD}) + key_bytes());
}

TEST_CASE("mask_payload matches a byte-wise reference at every length and offset", "[core][ws]")
{
  for (std::size_t length = 0; length <= 40; ++length) {
    for (std::size_t offset = 0; offset < 8; ++offset) {
      CAPTURE(length, offset);
      std::string data(length, '\0');
      for (std::size_t i = 0; i < length; ++i) {
        data[i] = static_cast<char>(i * 37 + 11);
      }
      const std::string original = data;
      std::string expected = data;
      for (std::size_t i = 0; i < length; ++i) {
        expected[i] =
            static_cast<char>(static_cast<unsigned char>(expected[i]) ^ kKey[(offset + i) % 4]);
      }
      ws::mask_payload(data, kKey, offset);
      CHECK(data == expected);
      ws::mask_payload(data, kKey, offset);
      CHECK(data == original); // its own inverse
    }
  }
}

TEST_CASE("mask_payload in pieces equals masking the whole payload", "[core][ws]")
{
  const std::string plain = "a payload long enough for several eight-byte words";
  std::string whole = plain;
  ws::mask_payload(whole, kKey);
  for (std::size_t split = 0; split <= plain.size(); ++split) {
    CAPTURE(split);
    std::string pieces = plain;
    ws::mask_payload(std::span<char>(pieces).subspan(0, split), kKey, 0);
    ws::mask_payload(std::span<char>(pieces).subspan(split), kKey, split);
    CHECK(pieces == whole);
  }
}

TEST_CASE("encoded frames round-trip through a decoder of the other role", "[core][ws]")
{
  const std::size_t size = GENERATE(0U, 1U, 125U, 126U, 65535U, 65536U, 70000U);
  const Opcode opcode = GENERATE(Opcode::text, Opcode::binary);
  const Role sender = GENERATE(Role::server, Role::client);
  CAPTURE(size, int(opcode), sender == Role::server);
  std::string payload(size, 'x');
  for (std::size_t i = 0; i < size; ++i) {
    payload[i] = static_cast<char>('a' + i % 26);
  }
  const std::string wire = ws::encode_frame(opcode, payload, sender, kKey);
  const std::size_t header = (size < 126      ? 2
                              : size <= 65535 ? 4
                                              : 10) +
                             (sender == Role::client ? 4 : 0);
  CHECK(wire.size() == header + size);
  const Role receiver = sender == Role::server ? Role::client : Role::server;
  CHECK(decode(receiver, wire, size) == Decoded{{message(opcode, payload)}, false, 0});
}

TEST_CASE("frames encoded without fin are reassembled by the decoder", "[core][ws]")
{
  const std::string wire = ws::encode_frame(Opcode::text, "Hel", Role::client, kKey, false) +
                           ws::encode_frame(Opcode::continuation, "lo", Role::client, kKey, false) +
                           ws::encode_frame(Opcode::continuation, "!", Role::client, kKey);
  CHECK(decode(Role::server, wire).events == std::vector{message(Opcode::text, "Hello!")});
}

TEST_CASE("encode_close writes the code in network order, then the reason", "[core][ws]")
{
  CHECK(ws::encode_close(1001, "bye") == bytes({0x88, 0x05, 0x03, 0xE9}) + "bye");
  CHECK(ws::encode_close(4000, "") == bytes({0x88, 0x02, 0x0F, 0xA0}));
  const std::string wire = ws::encode_close(ws::kCloseTooBig, "too big", Role::client, kKey);
  CHECK(decode(Role::server, wire).events == std::vector{closed(1009, "too big")});
}

TEST_CASE("encode_close with no status writes a close frame without a body", "[core][ws]")
{
  CHECK(ws::encode_close(ws::kCloseNoStatus, "ignored") == bytes({0x88, 0x00}));
  CHECK(decode(Role::client, ws::encode_close(ws::kCloseNoStatus, "")).events ==
        std::vector{closed(1005, "")});
}

TEST_CASE("encode_close cuts a long reason at a UTF-8 character boundary", "[core][ws]")
{
  const auto [ascii, character, kept] = GENERATE(table<std::size_t, std::string, std::size_t>({
      {123, "", 123},                 // fits exactly
      {122, "\xC3\xA9", 122},         // a 2-byte character would end at byte 124
      {121, "\xE2\x82\xAC", 121},     // 3-byte, ends at 124
      {120, "\xF0\x9D\x84\x9E", 120}, // 4-byte, ends at 124
      {119, "\xF0\x9D\x84\x9E", 123}, // 4-byte, ends at exactly 123
      {121, "\xC3\xA9", 123},         // 2-byte, ends at exactly 123
  }));
  CAPTURE(ascii, kept);
  const std::string reason = std::string(ascii, 'r') + character + std::string(40, 's');
  const std::string frame = ws::encode_close(ws::kCloseNormal, reason);
  REQUIRE(frame.size() == 2 + 2 + kept);
  CHECK(static_cast<unsigned char>(frame[1]) == 2 + kept);
  CHECK(frame.substr(4) == reason.substr(0, kept));
  CHECK(ws::valid_utf8(frame.substr(4)));
  CHECK(decode(Role::client, frame).events == std::vector{closed(1000, reason.substr(0, kept))});
}

// ---- decoding valid input ----------------------------------------------------

TEST_CASE("a masked text frame is one message whose payload points into the input", "[core][ws]")
{
  std::string wire = from_client(Opcode::text, "Hello");
  FrameDecoder decoder(Role::server, 100);
  Recorder sink;
  CHECK(decoder.feed(wire, sink) == wire.size());
  CHECK(sink.events == std::vector{message(Opcode::text, "Hello")});
  REQUIRE(sink.payload_addresses.size() == 1);
  CHECK(sink.payload_addresses[0] == wire.data() + 6); // no copy
  CHECK(wire.substr(6) == "Hello");                    // unmasked in place
  CHECK_FALSE(decoder.failed());
}

TEST_CASE("a client-role decoder accepts the unmasked frames of a server", "[core][ws]")
{
  const std::string wire = from_server(Opcode::text, "hi") +
                           from_server(Opcode::binary, std::string_view("\xFF\x00", 2)) +
                           from_server(Opcode::ping, "p") + from_server(Opcode::pong, "") +
                           ws::encode_close(1000, "done");
  CHECK(decode(Role::client, wire) == Decoded{{message(Opcode::text, "hi"),
                                               message(Opcode::binary, std::string("\xFF\x00", 2)),
                                               control(Event::Kind::ping, "p"),
                                               control(Event::Kind::pong, ""),
                                               closed(1000, "done")},
                                              false,
                                              0});
}

TEST_CASE("binary messages may hold bytes that are not UTF-8", "[core][ws]")
{
  const std::string payload = "\xC0\x80\xED\xA0\x80\xFF";
  CHECK(decode(Role::server, from_client(Opcode::binary, payload)).events ==
        std::vector{message(Opcode::binary, payload)});
}

TEST_CASE("empty text and binary messages are delivered", "[core][ws]")
{
  const std::string wire = from_client(Opcode::text, "") + from_client(Opcode::binary, "") +
                           from_client(Opcode::text, "", false) +
                           from_client(Opcode::continuation, "");
  CHECK(decode(Role::server, wire).events == std::vector{message(Opcode::text, ""),
                                                         message(Opcode::binary, ""),
                                                         message(Opcode::text, "")});
}

TEST_CASE("many frames in one buffer are all delivered, in order", "[core][ws]")
{
  std::string wire;
  std::vector<Seen> expected;
  for (std::size_t i = 0; i < 200; ++i) {
    const std::string payload(i * 7 % 300, static_cast<char>('a' + i % 26));
    wire += from_client(i % 3 == 0 ? Opcode::binary : Opcode::text, payload);
    expected.push_back(message(i % 3 == 0 ? Opcode::binary : Opcode::text, payload));
  }
  FrameDecoder decoder(Role::server, 1000);
  Recorder sink;
  CHECK(decoder.feed(wire, sink) == wire.size());
  CHECK(sink.events == expected);
}

TEST_CASE("an incomplete frame is left unconsumed and untouched until it completes", "[core][ws]")
{
  const std::string first = from_client(Opcode::text, "one");
  const std::string second = from_client(Opcode::text, std::string(300, 'y'));
  for (std::size_t missing = 1; missing < second.size(); missing += 37) {
    CAPTURE(missing);
    std::string wire = first + second.substr(0, second.size() - missing);
    const std::string before = wire;
    FrameDecoder decoder(Role::server, 1000);
    Recorder sink;
    CHECK(decoder.feed(wire, sink) == first.size());
    CHECK(sink.events == std::vector{message(Opcode::text, "one")});
    CHECK(wire.substr(first.size()) == before.substr(first.size())); // still masked
    std::string rest = wire.substr(first.size()) + second.substr(second.size() - missing);
    CHECK(decoder.feed(rest, sink) == rest.size());
    CHECK(sink.events.back() == message(Opcode::text, std::string(300, 'y')));
  }
}

TEST_CASE("fewer than two bytes consume nothing", "[core][ws]")
{
  FrameDecoder decoder(Role::server, 100);
  Recorder sink;
  std::string one = "\x81";
  CHECK(decoder.feed({}, sink) == 0);
  CHECK(decoder.feed(one, sink) == 0);
  CHECK(sink.events.empty());
}

TEST_CASE("a fragmented message is reported once, with the first fragment's opcode", "[core][ws]")
{
  const Opcode opcode = GENERATE(Opcode::text, Opcode::binary);
  const std::string wire = from_client(opcode, "frag", false) +
                           from_client(Opcode::continuation, "ment", false) +
                           from_client(Opcode::continuation, "ed");
  CHECK(decode(Role::server, wire).events == std::vector{message(opcode, "fragmented")});
}

TEST_CASE("control frames between fragments are delivered before the message", "[core][ws]")
{
  const std::string wire = from_client(Opcode::text, "a", false) + from_client(Opcode::ping, "p1") +
                           from_client(Opcode::continuation, "b", false) +
                           from_client(Opcode::pong, "p2") + from_client(Opcode::ping, "") +
                           from_client(Opcode::continuation, "c") + from_client(Opcode::close, "");
  CHECK(decode(Role::server, wire).events == std::vector{control(Event::Kind::ping, "p1"),
                                                         control(Event::Kind::pong, "p2"),
                                                         control(Event::Kind::ping, ""),
                                                         message(Opcode::text, "abc"),
                                                         closed(1005, "")});
}

TEST_CASE("buffered_message_bytes counts a partial message and returns to zero", "[core][ws]")
{
  FrameDecoder decoder(Role::server, 100);
  Recorder sink;
  std::string first = from_client(Opcode::binary, "12345", false);
  std::string second = from_client(Opcode::continuation, "678", false);
  std::string last = from_client(Opcode::continuation, "9");
  CHECK(decoder.buffered_message_bytes() == 0);
  decoder.feed(first, sink);
  CHECK(decoder.buffered_message_bytes() == 5);
  decoder.feed(second, sink);
  CHECK(decoder.buffered_message_bytes() == 8);
  decoder.feed(last, sink);
  CHECK(decoder.buffered_message_bytes() == 0);
  CHECK(sink.events == std::vector{message(Opcode::binary, "123456789")});
}

TEST_CASE("fragmented text may split a character between fragments", "[core][ws]")
{
  const std::string wire = from_client(Opcode::text, "caf\xC3", false) +
                           from_client(Opcode::continuation, "\xA9 \xF0\x9D", false) +
                           from_client(Opcode::continuation, "\x84", false) +
                           from_client(Opcode::continuation, "\x9E");
  CHECK(decode(Role::server, wire).events ==
        std::vector{message(Opcode::text, "caf\xC3\xA9 \xF0\x9D\x84\x9E")});
}

TEST_CASE("splitting the input at any byte offset gives the same events", "[core][ws]")
{
  const std::string wire = from_client(Opcode::text, "first") +
                           from_client(Opcode::binary, std::string(200, 'b'), false) +
                           from_client(Opcode::ping, "keepalive") +
                           from_client(Opcode::continuation, std::string(70000, 'c')) +
                           from_client(Opcode::text, "\xE2\x82", false) +
                           from_client(Opcode::continuation, "\xAC") +
                           ws::encode_close(1000, "bye", Role::client, kKey) +
                           from_client(Opcode::text, "trailing partial").substr(0, 9);
  const Decoded whole = decode(Role::server, wire);
  REQUIRE(whole.events.size() == 5);
  CHECK(whole.unconsumed == 9);
  for (std::size_t offset = 0; offset <= wire.size(); offset += offset < 400 ? 1 : 997) {
    CAPTURE(offset);
    CHECK(decode_in_reads(Role::server, wire, {offset}) == whole);
  }
  CHECK(decode_byte_by_byte(Role::server, wire) == whole);
}

TEST_CASE("feeding one byte at a time gives the same events as feeding everything at once",
          "[core][ws]")
{
  const Role role = GENERATE(Role::server, Role::client);
  CAPTURE(role == Role::server);
  ScenarioGenerator generator(20240601, role);
  for (int i = 0; i < 150; ++i) {
    CAPTURE(i);
    const auto scenario = generator.next();
    const Decoded expected{scenario.expected, false, 0};
    const Decoded whole = decode(role, scenario.wire);
    CHECK(whole == expected);
    CHECK(decode_byte_by_byte(role, scenario.wire) == whole);
    std::vector<std::size_t> cuts;
    for (std::size_t n = generator.below(8); n > 0; --n) {
      cuts.push_back(generator.below(scenario.wire.size() + 1));
    }
    std::sort(cuts.begin(), cuts.end());
    CHECK(decode_in_reads(role, scenario.wire, cuts) == whole);
  }
}

TEST_CASE("corrupted and truncated input gives the same events however it is split", "[core][ws]")
{
  const Role role = GENERATE(Role::server, Role::client);
  CAPTURE(role == Role::server);
  ScenarioGenerator generator(77031, role);
  std::size_t errors = 0;
  for (int i = 0; i < 300; ++i) {
    CAPTURE(i);
    std::string wire = generator.next().wire;
    for (std::size_t flips = 1 + generator.below(3); flips > 0; --flips) {
      char& byte = wire[generator.below(wire.size())];
      byte = static_cast<char>(static_cast<unsigned char>(byte) ^ (1U << generator.below(8)));
    }
    wire.resize(wire.size() - generator.below(std::min<std::size_t>(wire.size(), 4)));
    const std::size_t limit = generator.chance(50) ? kLargeLimit : 100;
    const Decoded whole = decode(role, wire, limit);
    errors += whole.failed ? 1 : 0;
    CHECK(decode_byte_by_byte(role, wire, limit) == whole);
    CHECK(decode_in_reads(role, wire, {generator.below(wire.size() + 1)}, limit) == whole);
  }
  CHECK(errors > 100); // the corruption does reach the checks
}

// ---- protocol errors ---------------------------------------------------------

namespace {

struct BadFrame {
  std::string name;
  Role role;
  std::string wire;
  std::uint16_t code;
  std::string reason;
};

} // namespace

TEST_CASE("protocol violations are reported once the header shows them", "[core][ws]")
{
  const std::string key = key_bytes();
  const BadFrame bad = GENERATE_COPY(values<BadFrame>({
      {"RSV1", Role::server, bytes({0xC1, 0x80}), 1002, "reserved bits set"},
      {"RSV2", Role::server, bytes({0xA1, 0x80}), 1002, "reserved bits set"},
      {"RSV3", Role::client, bytes({0x92, 0x00}), 1002, "reserved bits set"},
      {"opcode 3", Role::server, bytes({0x83, 0x80}), 1002, "unknown opcode"},
      {"opcode 7", Role::client, bytes({0x87, 0x00}), 1002, "unknown opcode"},
      {"opcode 11", Role::server, bytes({0x8B, 0x80}), 1002, "unknown opcode"},
      {"opcode 15", Role::server, bytes({0x8F, 0x80}), 1002, "unknown opcode"},
      {"ping without FIN", Role::server, bytes({0x09, 0x80}), 1002, "fragmented control frame"},
      {"close without FIN", Role::client, bytes({0x08, 0x00}), 1002, "fragmented control frame"},
      {"ping of 126 bytes",
       Role::server,
       bytes({0x89, 0xFE, 0x00, 0x7E}),
       1002,
       "control frame over 125 bytes"},
      {"pong, 64-bit length",
       Role::client,
       bytes({0x8A, 0x7F}),
       1002,
       "control frame over 125 bytes"},
      {"close of 126 bytes",
       Role::server,
       bytes({0x88, 0xFE}),
       1002,
       "control frame over 125 bytes"},
      {"unmasked to a server",
       Role::server,
       bytes({0x81, 0x02}) + "hi",
       1002,
       "unmasked client frame"},
      {"unmasked ping to a server",
       Role::server,
       bytes({0x89, 0x00}),
       1002,
       "unmasked client frame"},
      {"masked to a client",
       Role::client,
       bytes({0x81, 0x82}) + key + "hi",
       1002,
       "masked server frame"},
      {"64-bit length, top bit set",
       Role::server,
       bytes({0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0}),
       1002,
       "64-bit length with the top bit set"},
      {"16-bit form for 125",
       Role::server,
       bytes({0x82, 0xFE, 0x00, 0x7D}),
       1002,
       "length not minimally encoded"},
      {"16-bit form for 0",
       Role::client,
       bytes({0x82, 0x7E, 0x00, 0x00}),
       1002,
       "length not minimally encoded"},
      {"64-bit form for 65535",
       Role::server,
       bytes({0x82, 0xFF, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF}),
       1002,
       "length not minimally encoded"},
      {"64-bit form for 125",
       Role::client,
       bytes({0x81, 0x7F, 0, 0, 0, 0, 0, 0, 0, 0x7D}),
       1002,
       "length not minimally encoded"},
      {"continuation first",
       Role::server,
       bytes({0x80, 0x80}) + key,
       1002,
       "continuation frame without a message"},
      {"non-final continuation first",
       Role::client,
       bytes({0x00, 0x00}),
       1002,
       "continuation frame without a message"},
      {"text inside a text message",
       Role::server,
       bytes({0x01, 0x80}) + key + bytes({0x81, 0x80}),
       1002,
       "data frame inside a fragmented message"},
      {"binary inside a text message",
       Role::client,
       bytes({0x01, 0x00, 0x02, 0x00}),
       1002,
       "data frame inside a fragmented message"},
  }));
  CAPTURE(bad.name);
  FrameDecoder decoder(bad.role, kLargeLimit);
  Recorder sink;
  std::string wire = bad.wire;
  CHECK(decoder.feed(wire, sink) == wire.size());
  CHECK(sink.events == std::vector{violation(bad.code, bad.reason)});
  CHECK(decoder.failed());
  CHECK(decode_byte_by_byte(bad.role, bad.wire) ==
        Decoded{{violation(bad.code, bad.reason)}, true, 0});
}

TEST_CASE("a text message that is not UTF-8 fails with 1007", "[core][ws]")
{
  const std::string payload = GENERATE(as<std::string>{},
                                       "\xFF",
                                       "valid then \xC0\xAF",
                                       "surrogate \xED\xA0\x80",
                                       "too high \xF4\x90\x80\x80",
                                       "truncated \xE2\x82");
  CAPTURE(payload);
  CHECK(decode(Role::server, from_client(Opcode::text, payload)) ==
        Decoded{{violation(1007, "invalid UTF-8 in a text message")}, true, 0});
}

TEST_CASE("a text fragment that rules out valid text fails before the message ends", "[core][ws]")
{
  const std::string wire = from_client(Opcode::text, "ok", false) +
                           from_client(Opcode::continuation, "bad \xED\xA0", false);
  CHECK(decode(Role::server, wire) ==
        Decoded{{violation(1007, "invalid UTF-8 in a text message")}, true, 0});
}

TEST_CASE("a fragmented text message that ends inside a character fails with 1007", "[core][ws]")
{
  FrameDecoder decoder(Role::server, 100);
  Recorder sink;
  std::string first = from_client(Opcode::text, "ab\xC3", false);
  CHECK(decoder.feed(first, sink) == first.size());
  CHECK(sink.events.empty()); // the character may still complete
  std::string last = from_client(Opcode::continuation, "");
  CHECK(decoder.feed(last, sink) == last.size());
  CHECK(sink.events == std::vector{violation(1007, "invalid UTF-8 in a text message")});
}

// ---- close frames --------------------------------------------------------------

TEST_CASE("a close frame without a body reports code 1005", "[core][ws]")
{
  CHECK(decode(Role::server, from_client(Opcode::close, "")).events ==
        std::vector{closed(ws::kCloseNoStatus, "")});
}

TEST_CASE("a close frame reports the peer's code and reason", "[core][ws]")
{
  const int code = GENERATE(1000, 1001, 1003, 1007, 1008, 1011, 1014, 3000, 4999);
  CAPTURE(code);
  const std::string reason = "going \xE2\x86\x92 away";
  const auto wire = from_client(Opcode::close, close_body(std::uint16_t(code), reason));
  CHECK(decode(Role::server, wire).events == std::vector{closed(std::uint16_t(code), reason)});
}

TEST_CASE("a close body of one byte fails with 1002", "[core][ws]")
{
  CHECK(decode(Role::server, from_client(Opcode::close, "\x03")) ==
        Decoded{{violation(1002, "close frame with a 1-byte body")}, true, 0});
}

TEST_CASE("a close code not valid on the wire fails with 1002", "[core][ws]")
{
  const int code = GENERATE(0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535);
  CAPTURE(code);
  CHECK(decode(Role::server, from_client(Opcode::close, close_body(std::uint16_t(code), "x"))) ==
        Decoded{{violation(1002, "close code not valid on the wire")}, true, 0});
}

TEST_CASE("a close reason that is not UTF-8 fails with 1007", "[core][ws]")
{
  CHECK(decode(Role::client, from_server(Opcode::close, close_body(1000, "bad \xC3"))) ==
        Decoded{{violation(1007, "invalid UTF-8 in a close reason")}, true, 0});
}

TEST_CASE("ping and pong payloads of up to 125 bytes are delivered", "[core][ws]")
{
  const std::size_t size = GENERATE(0U, 1U, 125U);
  CAPTURE(size);
  const std::string payload(size, '\xAB'); // control payloads need not be UTF-8
  const std::string wire = from_client(Opcode::ping, payload) + from_client(Opcode::pong, payload);
  CHECK(decode(Role::server, wire, 0).events ==
        std::vector{control(Event::Kind::ping, payload), control(Event::Kind::pong, payload)});
}

// ---- size limits ---------------------------------------------------------------

TEST_CASE("a header announcing more than the limit fails with 1009 before the payload",
          "[core][ws]")
{
  const auto [name, header] = GENERATE(table<std::string, std::string>({
      {"7-bit length", bytes({0x82, 0xE5})},                             // 101 bytes
      {"16-bit length", bytes({0x81, 0xFE, 0x01, 0x00})},                // 256 bytes
      {"64-bit length", bytes({0x82, 0xFF, 0, 0, 0x01, 0, 0, 0, 0, 0})}, // 1 TiB
      {"first fragment", bytes({0x02, 0xE5})},                           // 101, not final
  }));
  CAPTURE(name);
  CHECK(decode(Role::server, header, 100) ==
        Decoded{{violation(1009, "message too big")}, true, 0});
}

TEST_CASE("a message of exactly the limit is accepted", "[core][ws]")
{
  const std::string payload(100, 'z');
  CHECK(decode(Role::server, from_client(Opcode::text, payload), 100).events ==
        std::vector{message(Opcode::text, payload)});
  const std::string wire = from_client(Opcode::text, std::string(60, 'z'), false) +
                           from_client(Opcode::continuation, std::string(40, 'z'));
  CHECK(decode(Role::server, wire, 100).events == std::vector{message(Opcode::text, payload)});
}

TEST_CASE("fragments that take a message over the limit fail with 1009 at that header",
          "[core][ws]")
{
  FrameDecoder decoder(Role::server, 10);
  Recorder sink;
  std::string first = from_client(Opcode::binary, "123456", false);
  CHECK(decoder.feed(first, sink) == first.size());
  CHECK(decoder.buffered_message_bytes() == 6);
  std::string header = from_client(Opcode::continuation, "12345").substr(0, 6); // no payload yet
  CHECK(decoder.feed(header, sink) == header.size());
  CHECK(sink.events == std::vector{violation(1009, "message too big")});
  CHECK(decoder.buffered_message_bytes() == 0);
}

TEST_CASE("control frames do not count toward the message limit", "[core][ws]")
{
  const std::string wire = from_client(Opcode::text, "ab", false) +
                           from_client(Opcode::ping, std::string(125, 'p')) +
                           from_client(Opcode::continuation, "cd");
  CHECK(decode(Role::server, wire, 4).events ==
        std::vector{control(Event::Kind::ping, std::string(125, 'p')),
                    message(Opcode::text, "abcd")});
}

TEST_CASE("a smaller limit set during a callback applies from the next frame", "[core][ws]")
{
  std::string wire = from_client(Opcode::text, std::string(50, 'a')) +
                     from_client(Opcode::text, std::string(50, 'b'));
  FrameDecoder decoder(Role::server, 100);
  Recorder sink;
  sink.hook = [&](const Event&) { decoder.set_max_message_bytes(10); };
  CHECK(decoder.feed(wire, sink) == wire.size());
  CHECK(sink.events == std::vector{message(Opcode::text, std::string(50, 'a')),
                                   violation(1009, "message too big")});
}

TEST_CASE("a limit lowered by a control frame's callback fails the message in progress",
          "[core][ws]")
{
  std::string wire = from_client(Opcode::binary, "12345678", false) +
                     from_client(Opcode::ping, "") + from_client(Opcode::continuation, "");
  FrameDecoder decoder(Role::server, 100);
  Recorder sink;
  sink.hook = [&](const Event&) { decoder.set_max_message_bytes(4); };
  CHECK(decoder.feed(wire, sink) == wire.size());
  CHECK(sink.events ==
        std::vector{control(Event::Kind::ping, ""), violation(1009, "message too big")});
}

TEST_CASE("a larger limit set between feeds admits a bigger message", "[core][ws]")
{
  FrameDecoder decoder(Role::server, 10);
  Recorder sink;
  decoder.set_max_message_bytes(50);
  CHECK(decoder.max_message_bytes() == 50);
  std::string wire = from_client(Opcode::binary, std::string(50, 'q'));
  CHECK(decoder.feed(wire, sink) == wire.size());
  CHECK(sink.events == std::vector{message(Opcode::binary, std::string(50, 'q'))});
}

// ---- stop() and the failed state -----------------------------------------------

TEST_CASE("stop() during a callback returns right after that frame", "[core][ws]")
{
  const std::string one = from_client(Opcode::text, "one");
  const std::string two = from_client(Opcode::ping, "two");
  const std::string three = from_client(Opcode::text, "three");
  std::string wire = one + two + three;
  FrameDecoder decoder(Role::server, 100);
  Recorder sink;
  sink.hook = [&](const Event& event) {
    if (event.kind == Event::Kind::ping) {
      decoder.stop();
    }
  };
  CHECK(decoder.feed(wire, sink) == one.size() + two.size());
  CHECK(sink.events ==
        std::vector{message(Opcode::text, "one"), control(Event::Kind::ping, "two")});
  std::string rest = wire.substr(one.size() + two.size());
  CHECK(decoder.feed(rest, sink) == rest.size()); // parses again
  CHECK(sink.events.size() == 3);
  CHECK(sink.events.back() == message(Opcode::text, "three"));
}

TEST_CASE("stop() outside a callback does not stop the next feed", "[core][ws]")
{
  std::string wire = from_client(Opcode::text, "a") + from_client(Opcode::text, "b");
  FrameDecoder decoder(Role::server, 100);
  Recorder sink;
  decoder.stop();
  CHECK(decoder.feed(wire, sink) == wire.size());
  CHECK(sink.events.size() == 2);
}

TEST_CASE("frames before a violation are delivered, nothing after it", "[core][ws]")
{
  std::string wire = from_client(Opcode::text, "before") + bytes({0xC1, 0x80}) + key_bytes() +
                     from_client(Opcode::text, "after");
  FrameDecoder decoder(Role::server, 100);
  Recorder sink;
  CHECK(decoder.feed(wire, sink) == wire.size());
  CHECK(sink.events ==
        std::vector{message(Opcode::text, "before"), violation(1002, "reserved bits set")});
}

TEST_CASE("a failed decoder consumes everything and reports nothing", "[core][ws]")
{
  FrameDecoder decoder(Role::server, 100);
  Recorder sink;
  std::string bad = from_server(Opcode::text, "unmasked");
  decoder.feed(bad, sink);
  REQUIRE(decoder.failed());
  REQUIRE(sink.events.size() == 1);
  std::string good = from_client(Opcode::text, "fine") + from_client(Opcode::close, "");
  const std::string before = good;
  CHECK(decoder.feed(good, sink) == good.size());
  CHECK(decoder.feed({}, sink) == 0);
  CHECK(sink.events.size() == 1);
  CHECK(good == before); // not even unmasked
  CHECK(decoder.failed());
}

TEST_CASE("an exception from the sink leaves the decoder failed", "[core][ws]")
{
  FrameDecoder decoder(Role::server, 100);
  Recorder sink;
  sink.hook = [](const Event&) { throw std::runtime_error("sink broke"); };
  std::string wire = from_client(Opcode::text, "a", false) + from_client(Opcode::ping, "");
  CHECK_THROWS_AS(decoder.feed(wire, sink), std::runtime_error);
  CHECK(decoder.failed());
  CHECK(decoder.buffered_message_bytes() == 0);
  std::string more = from_client(Opcode::continuation, "b");
  CHECK(decoder.feed(more, sink) == more.size());
  CHECK(sink.events.size() == 1); // only the ping that threw
}

// ---- fuzz inputs -----------------------------------------------------------------

TEST_CASE("the fuzz seed corpus decodes the same whole, split and byte by byte", "[core][ws]")
{
  const std::filesystem::path corpus =
      std::filesystem::path(EXAI_SOURCE_DIR) / "tests/fuzz/corpus/frame_codec";
  std::size_t files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(corpus)) {
    CAPTURE(entry.path().filename().string());
    std::ifstream in(entry.path(), std::ios::binary);
    const std::string wire{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    REQUIRE_FALSE(wire.empty());
    for (const Role role : {Role::server, Role::client}) {
      const Decoded whole = decode(role, wire, 4096);
      CHECK_FALSE(whole.events.empty());
      CHECK(decode_byte_by_byte(role, wire, 4096) == whole);
      CHECK(decode_in_reads(role, wire, {wire.size() / 2}, 4096) == whole);
    }
    ++files;
  }
  CHECK(files >= 12);
}
