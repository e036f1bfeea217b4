#include "core/tools/tool.hpp"
#include "net/protocol/op_frames.hpp"

#include <catch2/catch.hpp>

using nlohmann::json;
namespace frames = exai::net::protocol::frames;
using exai::core::Errc;

TEST_CASE("every call frame carries op and request_id", "[net][frames]")
{
  for (const auto& text : {frames::progress("r", "chat", "n"),
                           frames::ack("r", "chat", 270),
                           frames::result("r", std::vector<std::string>{"a"}),
                           frames::error_result("r", Errc::timeout, "late")}) {
    const json frame = json::parse(text);
    CHECK(frame.contains("op"));
    CHECK(frame["request_id"] == "r");
  }
}

TEST_CASE("a result joins its outputs with blank lines", "[net][frames]")
{
  const json frame = json::parse(frames::result("r", std::vector<std::string>{"one", "two"}));
  CHECK(frame["text"] == "one\n\ntwo");
  CHECK(frame["outputs"][1] == json{{"type", "text"}, {"text", "two"}});
}

TEST_CASE("error frames use the protocol code names", "[net][frames]")
{
  const json frame =
      json::parse(frames::error_result("r", Errc::over_capacity, "full", {{"scope", "global"}}));
  CHECK(frame["error"]["code"] == "OVER_CAPACITY");
  CHECK(frame["error"]["details"]["scope"] == "global");
  const json op = json::parse(frames::op_error(Errc::protocol_error, "Unknown operation: x"));
  CHECK(op["op"] == "error");
  CHECK(op["error"]["code"] == "PROTOCOL_ERROR");
  CHECK_FALSE(op.contains("request_id"));
}

TEST_CASE("invalid UTF-8 from upstream never breaks a frame", "[net][frames]")
{
  const std::string text =
      frames::result("r", std::vector<std::string>{std::string("bad \xff byte")});
  CHECK_NOTHROW(json::parse(text));
}

TEST_CASE("the output envelope has the documented shape", "[net][frames]")
{
  const json env = json::parse(exai::core::envelope("chat", "hi", "text", {{"model_used", "m"}}));
  CHECK(env["status"] == "success");
  CHECK(env["content"] == "hi");
  CHECK(env["metadata"]["tool_name"] == "chat");
  CHECK(env["metadata"]["model_used"] == "m");
  CHECK(env["continuation_offer"].is_null());
}

TEST_CASE("spliced frames escape every value", "[net][frames]")
{
  const std::string tricky = "quote \" backslash \\ newline \n tab \t ctl \x01 unicode é";
  const json res = json::parse(
      frames::result(tricky, std::vector<std::string>{tricky, "{\"nested\":\"json\"}"}));
  CHECK(res["request_id"] == tricky);
  CHECK(res["outputs"].size() == 2);
  CHECK(res["outputs"][0]["text"] == tricky);
  CHECK(res["outputs"][1]["text"] == "{\"nested\":\"json\"}");
  CHECK(res["text"] == tricky + "\n\n{\"nested\":\"json\"}");

  const json empty = json::parse(frames::result("r", std::vector<std::string>{}));
  CHECK(empty["outputs"] == json::array());
  CHECK(empty["text"] == "");

  const json progress = json::parse(frames::progress(tricky, tricky, tricky));
  CHECK(progress["op"] == "progress");
  CHECK(progress["name"] == tricky);
  CHECK(progress["note"] == tricky);
  CHECK(progress["t"].is_number());
  CHECK_FALSE(json::parse(frames::progress("r", "chat")).contains("note")); // no note when empty

  const json ack = json::parse(frames::ack(tricky, tricky, 1.5));
  CHECK(ack["op"] == "call_tool_ack");
  CHECK(ack["accepted"] == true);
  CHECK(ack["timeout"] == 1.5);
  CHECK(ack["name"] == tricky);
}
