#include "core/config/env_file.hpp"
#include "core/error.hpp"

#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

using exai::core::Error;
using exai::core::parse_env_text;

TEST_CASE("env file lines are KEY=value with comments and blanks skipped", "[core][env_file]")
{
  const auto values = parse_env_text("# comment\n\nA=1\n  B = two  \nexport C=3\n", "t.env");
  CHECK(values.size() == 3);
  CHECK(values.at("A") == "1");
  CHECK(values.at("B") == "two");
  CHECK(values.at("C") == "3");
}

TEST_CASE("env file quotes keep text literally or with escapes", "[core][env_file]")
{
  const auto values = parse_env_text(
      "S='a # b \\n'\nD=\"x\\ty\\\"z\\n\"\nE=\"\"\nH=url#frag\nI=v # note\nJ=\"q\" # note\n",
      "t.env");
  CHECK(values.at("S") == "a # b \\n");
  CHECK(values.at("D") == "x\ty\"z\n");
  CHECK(values.at("E").empty());
  CHECK(values.at("H") == "url#frag");
  CHECK(values.at("I") == "v");
  CHECK(values.at("J") == "q");
}

TEST_CASE("env file tolerates CRLF line ends and a UTF-8 BOM", "[core][env_file]")
{
  const auto values = parse_env_text("\xEF\xBB\xBF"
                                     "A=1\r\nB='2'\r\n",
                                     "t.env");
  CHECK(values.at("A") == "1");
  CHECK(values.at("B") == "2");
  CHECK(values.count("\xEF\xBB\xBF"
                     "A") == 0);
}

TEST_CASE("env file duplicate keys: the later one wins", "[core][env_file]")
{
  const auto values = parse_env_text("A=1\nA=2\n", "t.env");
  CHECK(values.at("A") == "2");
}

TEST_CASE("malformed env file lines are errors naming the file and line", "[core][env_file]")
{
  const auto [text, fragment] = GENERATE(table<std::string, std::string>({
      {"A=1\nJUSTAWORD\n", "t.env line 2: expected KEY=value"},
      {"A=\"open\n", "t.env line 1: unterminated quote"},
      {"A='open\n", "t.env line 1: unterminated quote"},
      {"1BAD=x\n", "t.env line 1: invalid variable name '1BAD'"},
      {"=x\n", "t.env line 1: invalid variable name ''"},
      {"A=\"x\" trailing\n", "t.env line 1: unexpected text after closing quote"},
  }));
  CAPTURE(text);
  try {
    (void)parse_env_text(text, "t.env");
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.code() == exai::core::Errc::config_invalid);
    CHECK_THAT(e.what(), Catch::Contains(fragment));
  }
}

TEST_CASE("an unreadable env file is a configuration error", "[core][env_file]")
{
  CHECK_THROWS_WITH(exai::core::read_env_file("/nonexistent/exai.env"),
                    Catch::Contains("/nonexistent/exai.env: cannot be read"));
}

TEST_CASE("an env file is read from disk", "[core][env_file]")
{
  char path[] = "/tmp/exai-env-XXXXXX";
  const int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  close(fd);
  std::ofstream(path) << "KIMI_API_URL=http://127.0.0.1:9/v1\n";
  const auto values = exai::core::read_env_file(path);
  std::remove(path);
  CHECK(values.at("KIMI_API_URL") == "http://127.0.0.1:9/v1");
}
