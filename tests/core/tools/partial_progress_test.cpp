#include "core/tools/partial_progress.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace exai::core;

TEST_CASE("partial progress: at most one note per interval, none before the first interval",
          "[core][stream]")
{
  std::vector<std::string> notes;
  PartialProgress::Clock::time_point now{};
  PartialProgress partial([&](std::string_view note) { notes.emplace_back(note); },
                          "glm-4.5",
                          std::chrono::milliseconds(250),
                          [&] { return now; });
  // An answer that streams in within the first interval needs no note.
  partial("He");
  now += std::chrono::milliseconds(249);
  partial("Hello");
  CHECK(notes.empty());
  now += std::chrono::milliseconds(1);
  partial("Hello wo");
  REQUIRE(notes.size() == 1);
  now += std::chrono::milliseconds(249);
  partial("Hello wor");
  CHECK(notes.size() == 1);
  now += std::chrono::milliseconds(1);
  partial("Hello world");
  REQUIRE(notes.size() == 2);
  CHECK(notes[0] == "streaming from glm-4.5 (8 chars): Hello wo");
  CHECK(notes[1] == "streaming from glm-4.5 (11 chars): Hello world");
  now += std::chrono::milliseconds(500);
  partial("");
  CHECK(notes.size() == 2);
}

TEST_CASE("partial progress: a long answer's note carries its end, cut at a character boundary",
          "[core][stream]")
{
  std::string content(1000, 'a');
  content += "\xc3\xa9tail";
  const std::string note = partial_note("m", content, 5);
  CHECK(note == "streaming from m (1006 chars): \u2026tail");
  const std::string whole = partial_note("m", content, 6);
  CHECK(whole == "streaming from m (1006 chars): \u2026\xc3\xa9tail");
}
