#include "core/util/json_text.hpp"

#include <catch2/catch.hpp>

#include <string>

using namespace exai::core;

TEST_CASE("top_level_member: the raw text of a top-level member of any type", "[core][json]")
{
  const std::string text = R"( { "status" : "ok", "n": 12 , "list": [1, {"status": "inner"}],
    "meta": {"a": {"b": "}"}, "c": "\"{"}, "flag": true, "esc\"aped": "x", "last": null } )";
  CHECK(top_level_member(text, "status") == R"("ok")");
  CHECK(top_level_member(text, "n") == "12");
  CHECK(top_level_member(text, "list") == R"([1, {"status": "inner"}])");
  CHECK(top_level_member(text, "meta") == R"({"a": {"b": "}"}, "c": "\"{"})");
  CHECK(top_level_member(text, "flag") == "true");
  CHECK(top_level_member(text, "esc\"aped") == R"("x")");
  CHECK(top_level_member(text, "last") == "null");
  CHECK_FALSE(top_level_member(text, "b"));       // nested names are not top-level
  CHECK_FALSE(top_level_member(text, "missing")); // absent
}

TEST_CASE("top_level_member: not an object, or cut short, is no member", "[core][json]")
{
  CHECK_FALSE(top_level_member(R"(["status", "ok"])", "status"));
  CHECK_FALSE(top_level_member(R"("status")", "status"));
  CHECK_FALSE(top_level_member(R"({"status": "ok)", "status"));
  CHECK_FALSE(top_level_member(R"({"status": [1, 2)", "status"));
  CHECK_FALSE(top_level_member("", "status"));
  CHECK(top_level_member(R"({"status":})", "status") == "");
}

TEST_CASE("top_level_string: only a string member's value, unescaped", "[core][json]")
{
  CHECK(top_level_string(R"({"op":"call_tool","request_id":"a\"b"})", "request_id") == "a\"b");
  CHECK_FALSE(top_level_string(R"({"request_id": 7})", "request_id"));
  CHECK_FALSE(top_level_string(R"({"request_id": {"x": "y"}})", "request_id"));
  CHECK_FALSE(top_level_string(R"({"inner": {"request_id": "y"}})", "request_id"));
  CHECK(top_level_string(R"({"request_id": 7, "request_id": "later"})", "request_id") ==
        std::nullopt); // the first member named so decides
}
