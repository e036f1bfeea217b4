#include "core/tools/partial_progress.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace exai::core;

TEST_CASE("partial progress: at most one note per interval, the first at once", "[core][stream]")
{
  std::vector<std::string> notes;
  PartialProgress::Clock::time_point now{};
  PartialProgress partial([&](std::string_view note) { notes.emplace_back(note); },
                          "glm-4.5",
                          std::chrono::milliseconds(250),
                          [&] { return now; });
  partial("He");
  now += std::chrono::milliseconds(100);
  partial("Hello");
  now += std::chrono::milliseconds(149);
  partial("Hello wo");
  CHECK(notes.size() == 1);
  now += std::chrono::milliseconds(1);
  partial("Hello world");
  REQUIRE(notes.size() == 2);
  CHECK(notes[0] == "streaming from glm-4.5 (2 chars): He");
  CHECK(notes[1] == "streaming from glm-4.5 (11 chars): Hello world");
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
