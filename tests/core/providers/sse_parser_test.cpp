#include "core/providers/sse_parser.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using exai::core::sse::Event;
using exai::core::sse::Parser;

namespace {

struct Seen {
  std::string type;
  std::string data;
  bool operator==(const Seen& other) const { return type == other.type && data == other.data; }
};

std::vector<Seen>
parse_in_pieces(std::string_view text, std::size_t cut, std::size_t limit = 1U << 20U)
{
  Parser parser(limit);
  std::vector<Seen> seen;
  const auto on_event = [&](const Event& e) {
    seen.push_back({std::string(e.type), std::string(e.data)});
  };
  parser.feed(text.substr(0, cut), on_event);
  parser.feed(text.substr(cut), on_event);
  parser.finish(on_event);
  return seen;
}

} // namespace

TEST_CASE("sse: events split at every byte boundary parse the same", "[core][sse]")
{
  const std::string text = ": comment\r\n"
                           "data: one\r\n\r\n"
                           "event: error\ndata: {\"a\":1}\n\n"
                           "data:two\ndata: lines\r\r"
                           "id: 7\nretry: 10\ndata: [DONE]\n\n";
  const std::vector<Seen> expected = {
      {"", "one"}, {"error", "{\"a\":1}"}, {"", "two\nlines"}, {"", "[DONE]"}};
  for (std::size_t cut = 0; cut <= text.size(); ++cut) {
    INFO("cut at " << cut);
    CHECK(parse_in_pieces(text, cut) == expected);
  }
}

TEST_CASE("sse: byte by byte, a CRLF split across pieces ends one line", "[core][sse]")
{
  const std::string text = "data: a\r\n\r\ndata: b\r\n\r\n";
  Parser parser;
  std::vector<std::string> seen;
  for (const char c : text) {
    parser.feed(std::string_view(&c, 1), [&](const Event& e) { seen.emplace_back(e.data); });
  }
  CHECK(seen == std::vector<std::string>{"a", "b"});
}

TEST_CASE("sse: a last event without its blank line is dispatched at the end", "[core][sse]")
{
  CHECK(parse_in_pieces("data: x\n\ndata: tail", 3) == std::vector<Seen>{{"", "x"}, {"", "tail"}});
  CHECK(parse_in_pieces("event: only-type\n\n: c\n", 2).empty());
}

TEST_CASE("sse: a 1 MB single event is one event; beyond the limit the parser stops", "[core][sse]")
{
  std::string big(std::size_t{1} << 20U, 'x');
  std::string text = "data: ";
  text += big;
  text += "\n\n";
  const auto seen = parse_in_pieces(text, 4096, std::size_t{2} << 20U);
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].data == big);

  Parser small(1000);
  int events = 0;
  CHECK_FALSE(small.feed(text, [&](const Event&) { ++events; }));
  CHECK(small.too_large());
  CHECK_FALSE(small.feed("data: more\n\n", [&](const Event&) { ++events; }));
  CHECK(events == 0);
}
