#include "net/protocol/op_protocol.hpp"

#include <catch2/catch.hpp>

#include <regex>
#include <set>

namespace protocol = exai::net::protocol;
using nlohmann::json;

TEST_CASE("parse_frame tells JSON objects from other JSON and from garbage", "[net][protocol]")
{
  CHECK(std::holds_alternative<json>(protocol::parse_frame(R"({"op":"hello"})")));
  for (const std::string_view bad : {"{oops", "", "[1]", "\"\xff\xfe\""}) {
    CAPTURE(bad);
    const auto parsed = protocol::parse_frame(bad);
    REQUIRE(std::holds_alternative<protocol::FrameProblem>(parsed));
    const auto& problem = std::get<protocol::FrameProblem>(parsed);
    CHECK(problem.code == exai::core::Errc::validation_error);
    CHECK_FALSE(problem.message.empty());
  }
}

TEST_CASE("a frame that cannot be parsed is still answered with its op and request_id",
          "[net][protocol]")
{
  // A number that does not fit a double makes the whole frame invalid JSON.
  const auto parsed = protocol::parse_frame(
      R"({"op":"call_tool","request_id":"r-1e400","name":"chat","arguments":{"n":1e400}})");
  REQUIRE(std::holds_alternative<protocol::FrameProblem>(parsed));
  const auto& problem = std::get<protocol::FrameProblem>(parsed);
  CHECK(problem.op == "call_tool");
  CHECK(problem.request_id == "r-1e400");
  const json answer = json::parse(protocol::problem_frame(problem));
  CHECK(answer["op"] == "call_tool_res");
  CHECK(answer["request_id"] == "r-1e400");
  CHECK(answer["error"]["code"] == "VALIDATION_ERROR");

  const auto other = protocol::parse_frame(R"({"request_id":"r2","op":"health","x":1e999})");
  const json op_error =
      json::parse(protocol::problem_frame(std::get<protocol::FrameProblem>(other)));
  CHECK(op_error["op"] == "error");
  CHECK(op_error["request_id"] == "r2");
}

TEST_CASE("frames nested deeper than 64 levels are refused before anything is built",
          "[net][protocol]")
{
  const std::string deep = R"({"op":"call_tool","request_id":"deep","arguments":{"a":)" +
                           std::string(75000, '[') + std::string(75000, ']') + "}}";
  const auto parsed = protocol::parse_frame(deep);
  REQUIRE(std::holds_alternative<protocol::FrameProblem>(parsed));
  const auto& problem = std::get<protocol::FrameProblem>(parsed);
  CHECK(problem.message.find("deeper than 64") != std::string::npos);
  CHECK(problem.request_id == "deep");
  const std::string ok = R"({"op":"x","a":)" + std::string(60, '[') + std::string(60, ']') + "}";
  CHECK(std::holds_alternative<json>(protocol::parse_frame(ok)));
}

TEST_CASE("parse_call_tool validates request_id, name and arguments", "[net][protocol]")
{
  const auto ok = protocol::parse_call_tool(json{{"op", "call_tool"},
                                                 {"request_id", "r"},
                                                 {"name", "chat-EXAI_WS"},
                                                 {"arguments", {{"prompt", "hi"}}}},
                                            "sess");
  REQUIRE(std::holds_alternative<exai::core::CallRequest>(ok));
  const auto& request = std::get<exai::core::CallRequest>(ok);
  CHECK(request.request_id == "r");
  CHECK(request.tool == "chat");
  CHECK(request.session_id == "sess");
  CHECK(request.arguments == json{{"prompt", "hi"}});

  const auto no_args = protocol::parse_call_tool(
      json{{"request_id", "r"}, {"name", "version"}, {"arguments", nullptr}}, "s");
  REQUIRE(std::holds_alternative<exai::core::CallRequest>(no_args));
  CHECK(std::get<exai::core::CallRequest>(no_args).arguments == json::object());

  struct Case {
    json frame;
    bool has_request_id;
  };
  const auto bad =
      GENERATE(Case{json{{"name", "chat"}}, false},
               Case{json{{"request_id", ""}, {"name", "chat"}}, false},
               Case{json{{"request_id", 12}, {"name", "chat"}}, false},
               Case{json{{"request_id", "r"}}, true},
               Case{json{{"request_id", "r"}, {"name", ""}}, true},
               Case{json{{"request_id", "r"}, {"name", json::array()}}, true},
               Case{json{{"request_id", "r"}, {"name", "chat"}, {"arguments", 1}}, true});
  CAPTURE(bad.frame.dump());
  const auto result = protocol::parse_call_tool(bad.frame, "s");
  REQUIRE(std::holds_alternative<protocol::FrameProblem>(result));
  const auto& problem = std::get<protocol::FrameProblem>(result);
  CHECK(problem.request_id.has_value() == bad.has_request_id);
  CHECK_FALSE(problem.message.empty());
}

TEST_CASE("problem frames are call_tool_res for calls and op errors otherwise", "[net][protocol]")
{
  const auto e = json::parse(protocol::problem_frame(
      protocol::FrameProblem{exai::core::Errc::protocol_error, "Unknown operation: x", "x", "r9"}));
  CHECK(e == json{{"op", "error"},
                  {"request_id", "r9"},
                  {"error",
                   {{"code", "PROTOCOL_ERROR"},
                    {"message", "Unknown operation: x"},
                    {"details", json::object()}}}});
  const auto c = json::parse(protocol::problem_frame(
      protocol::FrameProblem{exai::core::Errc::validation_error, "bad", "call_tool", "r1"}));
  CHECK(c.at("op") == "call_tool_res");
  CHECK(c.at("request_id") == "r1");
  CHECK(c.at("error").at("code") == "VALIDATION_ERROR");
  CHECK(c.at("error").at("details") == json::object());
  // Invalid UTF-8 quoted from input is replaced, never thrown.
  CHECK_NOTHROW(protocol::problem_frame(
      protocol::FrameProblem{exai::core::Errc::invalid_request, "bad \xff byte", {}, {}}));
}

TEST_CASE("hello_ack frames match SPEC §2", "[net][protocol]")
{
  CHECK(json::parse(protocol::hello_ack_ok("abc")) ==
        json{{"op", "hello_ack"}, {"ok", true}, {"session_id", "abc"}});
  CHECK(json::parse(protocol::hello_ack_error("unauthorized")) ==
        json{{"op", "hello_ack"}, {"ok", false}, {"error", "unauthorized"}});
}

TEST_CASE("session ids are 192-bit random base64url strings", "[net][protocol]")
{
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    const auto id = protocol::make_session_id();
    CHECK(std::regex_match(id, std::regex("[A-Za-z0-9_-]{32}")));
    seen.insert(id);
  }
  CHECK(seen.size() == 1000);
}
