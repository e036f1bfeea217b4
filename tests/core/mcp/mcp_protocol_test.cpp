#include "core/mcp/mcp_protocol.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <string>

namespace mcp = exai::core::mcp;
using nlohmann::json;
using Type = mcp::Action::Type;

namespace {

mcp::Action
route_text(const std::string& text)
{
  return mcp::route(mcp::parse_message(text), "9.9.9");
}

json
response_of(const mcp::Action& action)
{
  REQUIRE(action.type == Type::respond);
  return json::parse(action.response);
}

} // namespace

TEST_CASE("malformed JSON is a -32700 parse error with a null id", "[core][mcp_protocol]")
{
  const std::string text = GENERATE(std::string("{"), std::string("not json"), std::string(""));
  CAPTURE(text);
  const auto reply = response_of(route_text(text));
  CHECK(reply["jsonrpc"] == "2.0");
  CHECK(reply["id"].is_null());
  CHECK(reply["error"]["code"] == -32700);
}

TEST_CASE("a batch is rejected with one -32600 error", "[core][mcp_protocol]")
{
  const auto reply = response_of(route_text(R"([{"jsonrpc":"2.0","id":1,"method":"ping"},)"
                                            R"({"jsonrpc":"2.0","id":2,"method":"ping"}])"));
  CHECK(reply["id"].is_null());
  CHECK(reply["error"]["code"] == -32600);
  CHECK(reply["error"]["message"].get<std::string>().find("batch") != std::string::npos);
}

TEST_CASE("structurally invalid requests are -32600", "[core][mcp_protocol]")
{
  const std::string text = GENERATE(std::string(R"("just a string")"),
                                    std::string(R"({"id":1,"method":"ping"})"),
                                    std::string(R"({"jsonrpc":"1.0","id":1,"method":"ping"})"),
                                    std::string(R"({"jsonrpc":"2.0","id":1.5,"method":"ping"})"),
                                    std::string(R"({"jsonrpc":"2.0","id":{},"method":"ping"})"),
                                    std::string(R"({"jsonrpc":"2.0","id":1,"method":7})"),
                                    std::string(R"({"jsonrpc":"2.0","id":1})"));
  CAPTURE(text);
  const auto reply = response_of(route_text(text));
  CHECK(reply["error"]["code"] == -32600);
}

TEST_CASE("an unknown method is -32601 with the request's id", "[core][mcp_protocol]")
{
  const auto reply =
      response_of(route_text(R"({"jsonrpc":"2.0","id":"a","method":"server/discover"})"));
  CHECK(reply["id"] == "a");
  CHECK(reply["error"]["code"] == -32601);
  CHECK(reply["error"]["data"]["method"] == "server/discover");
}

TEST_CASE("ping answers an empty result", "[core][mcp_protocol]")
{
  const auto reply = response_of(route_text(R"({"jsonrpc":"2.0","id":7,"method":"ping"})"));
  CHECK(reply["id"] == 7);
  CHECK(reply["result"] == json::object());
}

TEST_CASE("initialize echoes a supported protocol version", "[core][mcp_protocol]")
{
  const std::string version =
      GENERATE(std::string("2025-03-26"), std::string("2025-06-18"), std::string("2025-11-25"));
  const auto action = route_text(json{{"jsonrpc", "2.0"},
                                      {"id", 1},
                                      {"method", "initialize"},
                                      {"params",
                                       {{"protocolVersion", version},
                                        {"capabilities", json::object()},
                                        {"clientInfo", {{"name", "t"}, {"version", "1"}}}}}}
                                     .dump());
  const auto reply = response_of(action);
  CHECK(action.protocol_version == version);
  CHECK(reply["result"]["protocolVersion"] == version);
  CHECK(reply["result"]["serverInfo"]["name"] == "exai");
  CHECK(reply["result"]["serverInfo"]["version"] == "9.9.9");
  CHECK(reply["result"]["capabilities"].contains("tools"));
}

TEST_CASE("initialize with an unknown version offers the newest", "[core][mcp_protocol]")
{
  const auto reply = response_of(route_text(
      R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2024-10-01","capabilities":{}}})"));
  CHECK(reply["result"]["protocolVersion"] == "2025-11-25");
  CHECK(mcp::negotiate_protocol_version("1999-01-01") == mcp::kLatestProtocolVersion);
  CHECK_FALSE(mcp::supported_protocol_version("2024-10-01"));
}

TEST_CASE("initialize accepts every version from 2024-11-05 to the newest", "[core][mcp_protocol]")
{
  const std::string version = GENERATE("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25");
  const auto reply = response_of(
      route_text(R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":")" +
                 version + R"(","capabilities":{}}})"));
  CHECK(reply["result"]["protocolVersion"] == version);
  CHECK(reply["result"]["capabilities"]["prompts"].is_object());
  CHECK(reply["result"]["capabilities"]["logging"].is_object());
}

TEST_CASE("wrong params are -32602", "[core][mcp_protocol]")
{
  const std::string text = GENERATE(
      std::string(R"({"jsonrpc":"2.0","id":1,"method":"initialize"})"),
      std::string(
          R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":5}})"),
      std::string(R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":[1]})"),
      std::string(R"({"jsonrpc":"2.0","id":1,"method":"tools/call"})"),
      std::string(R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":""}})"),
      std::string(R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":3}})"),
      std::string(
          R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"chat","arguments":[]}})"),
      std::string(
          R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"chat","_meta":{"progressToken":1.5}}})"));
  CAPTURE(text);
  const auto reply = response_of(route_text(text));
  CHECK(reply["id"] == 1);
  CHECK(reply["error"]["code"] == -32602);
}

TEST_CASE("tools/call yields the call with arguments and progress token", "[core][mcp_protocol]")
{
  const auto action = route_text(
      R"({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"chat","arguments":{"prompt":"hi"},"_meta":{"progressToken":"p1"}}})");
  REQUIRE(action.type == Type::call_tool);
  CHECK(action.id == 3);
  CHECK(action.call.name == "chat");
  CHECK(action.call.arguments == json{{"prompt", "hi"}});
  CHECK(action.call.progress_token == "p1");

  const auto bare =
      route_text(R"({"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"version"}})");
  REQUIRE(bare.type == Type::call_tool);
  CHECK(bare.call.arguments == json::object());
  CHECK(bare.call.progress_token.is_null());
}

TEST_CASE("notifications get no response", "[core][mcp_protocol]")
{
  CHECK(route_text(R"({"jsonrpc":"2.0","method":"notifications/initialized"})").type == Type::none);
  CHECK(route_text(R"({"jsonrpc":"2.0","method":"notifications/whatever","params":{}})").type ==
        Type::none);
  CHECK(route_text(R"({"jsonrpc":"2.0","method":"notifications/x","params":3})").type ==
        Type::none);
  CHECK(route_text(R"({"jsonrpc":"2.0","id":9,"result":{}})").type == Type::none);
}

TEST_CASE("notifications/cancelled names the request to cancel", "[core][mcp_protocol]")
{
  const auto action = route_text(
      R"({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":5,"reason":"user"}})");
  REQUIRE(action.type == Type::cancel);
  CHECK(action.cancel_id == 5);
  CHECK(route_text(R"({"jsonrpc":"2.0","method":"notifications/cancelled","params":{}})").type ==
        Type::none);
}

TEST_CASE("tools/list maps the daemon's tools", "[core][mcp_protocol]")
{
  const auto action = route_text(R"({"jsonrpc":"2.0","id":2,"method":"tools/list"})");
  REQUIRE(action.type == Type::list_tools);
  const json daemon =
      json::array({{{"name", "version"}, {"description", "v"}},
                   {{"name", "chat"},
                    {"description", "c"},
                    {"title", "Chat"},
                    {"annotations", {{"readOnlyHint", true}}},
                    {"outputSchema", {{"type", "object"}}},
                    {"inputSchema", {{"type", "object"}, {"required", {"prompt"}}}}},
                   {{"description", "nameless"}}});
  const json result = mcp::tools_list_result(daemon);
  REQUIRE(result["tools"].size() == 2);
  CHECK(result["tools"][0]["inputSchema"] == json{{"type", "object"}});
  CHECK_FALSE(result["tools"][0].contains("title"));
  CHECK(result["tools"][1]["inputSchema"]["required"][0] == "prompt");
  CHECK(result["tools"][1]["title"] == "Chat");
  CHECK(result["tools"][1]["annotations"]["readOnlyHint"] == true);
  CHECK(result["tools"][1]["outputSchema"]["type"] == "object");
}

TEST_CASE("call_tool_res outputs become text content", "[core][mcp_protocol]")
{
  const json res = {{"op", "call_tool_res"},
                    {"request_id", "r"},
                    {"outputs", {{{"type", "text"}, {"text", R"({"status":"success"})"}}}},
                    {"text", "x"}};
  const auto reply = json::parse(mcp::tool_call_response(1, res));
  CHECK(reply["result"]["isError"] == false);
  CHECK(reply["result"]["content"][0] ==
        json{{"type", "text"}, {"text", R"({"status":"success"})"}});
  // The envelope is also the structured result (the tools' outputSchema).
  CHECK(reply["result"]["structuredContent"] == json{{"status", "success"}});
  const json plain = {{"op", "call_tool_res"},
                      {"request_id", "r"},
                      {"outputs", {{{"type", "text"}, {"text", "not json"}}}}};
  CHECK_FALSE(
      json::parse(mcp::tool_call_response(1, plain))["result"].contains("structuredContent"));
}

TEST_CASE("daemon errors become isError results, an unknown tool -32602", "[core][mcp_protocol]")
{
  const json over = {{"op", "call_tool_res"},
                     {"request_id", "r"},
                     {"error",
                      {{"code", "OVER_CAPACITY"},
                       {"message", "global capacity exhausted"},
                       {"details", {{"scope", "global"}, {"retry_after", 5}}}}}};
  const auto reply = json::parse(mcp::tool_call_response("x", over));
  CHECK(reply["result"]["isError"] == true);
  const auto text = reply["result"]["content"][0]["text"].get<std::string>();
  CHECK(text.find("OVER_CAPACITY") != std::string::npos);
  CHECK(text.find("retry after 5 s") != std::string::npos);

  const json missing = {{"op", "call_tool_res"},
                        {"request_id", "r"},
                        {"error", {{"code", "TOOL_NOT_FOUND"}, {"message", "nope"}}}};
  const auto unknown = json::parse(mcp::tool_call_response("x", missing));
  CHECK(unknown["error"]["code"] == -32602);
}

TEST_CASE("progress frames become increasing progress notifications", "[core][mcp_protocol]")
{
  using Clock = mcp::CallTranslator::Clock;
  const auto t0 = Clock::now();
  mcp::CallTranslator call(1, "tok", t0);
  auto out = call.on_frame({{"op", "progress"}, {"note", "queued"}}, t0);
  REQUIRE(out.size() == 1);
  auto n1 = json::parse(out[0]);
  CHECK(n1["method"] == "notifications/progress");
  CHECK(n1["params"]["progressToken"] == "tok");
  CHECK(n1["params"]["message"] == "queued");
  out = call.on_frame({{"op", "call_tool_ack"}}, t0);
  REQUIRE(out.size() == 1);
  auto n2 = json::parse(out[0]);
  CHECK(n2["params"]["progress"].get<int>() > n1["params"]["progress"].get<int>());

  CHECK_FALSE(call.heartbeat(t0 + std::chrono::seconds(1)));
  const auto beat = call.heartbeat(t0 + mcp::CallTranslator::kHeartbeat);
  REQUIRE(beat);
  CHECK(json::parse(*beat)["params"]["progress"].get<int>() > n2["params"]["progress"].get<int>());

  out = call.on_frame({{"op", "call_tool_res"}, {"outputs", json::array()}}, t0);
  REQUIRE(out.size() == 1);
  CHECK(call.done());
  CHECK_FALSE(call.heartbeat(t0 + std::chrono::hours(1)));
  CHECK(call.on_frame({{"op", "call_tool_res"}}, t0).empty());
}

TEST_CASE("no progress is sent without a progress token", "[core][mcp_protocol]")
{
  const auto t0 = mcp::CallTranslator::Clock::now();
  mcp::CallTranslator call(1, nullptr, t0);
  CHECK(call.on_frame({{"op", "progress"}, {"note", "queued"}}, t0).empty());
  CHECK_FALSE(call.heartbeat(t0 + std::chrono::hours(1)));
}

TEST_CASE("logging/setLevel takes the eight MCP levels and names the field otherwise",
          "[core][mcp_protocol]")
{
  const auto ok = route_text(
      R"({"jsonrpc":"2.0","id":1,"method":"logging/setLevel","params":{"level":"warning"}})");
  REQUIRE(ok.log_level);
  CHECK(*ok.log_level == mcp::LogLevel::warning);
  CHECK(response_of(ok)["result"] == json::object());
  const auto bad = route_text(
      R"({"jsonrpc":"2.0","id":2,"method":"logging/setLevel","params":{"level":"loud"}})");
  CHECK_FALSE(bad.log_level);
  const auto reply = response_of(bad);
  CHECK(reply["error"]["code"] == -32602);
  CHECK(reply["error"]["data"]["level"] == "loud");
  const auto note = json::parse(mcp::log_notification(mcp::LogLevel::error, "exai", {{"a", 1}}));
  CHECK(note["method"] == "notifications/message");
  CHECK(note["params"]["level"] == "error");
  CHECK(note["params"]["data"]["a"] == 1);
}

TEST_CASE("tools/list and prompts/list refuse any cursor with -32602", "[core][mcp_protocol]")
{
  const std::string method = GENERATE("tools/list", "prompts/list");
  const auto reply = response_of(route_text(R"({"jsonrpc":"2.0","id":1,"method":")" + method +
                                            R"(","params":{"cursor":"abc"}})"));
  CHECK(reply["error"]["code"] == -32602);
  CHECK(reply["error"]["data"]["cursor"] == "abc");
  CHECK(route_text(R"({"jsonrpc":"2.0","id":1,"method":"prompts/list"})").type ==
        Type::list_prompts);
  CHECK(
      route_text(R"({"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"x"}})").type ==
      Type::get_prompt);
}

TEST_CASE("a batch parses to its messages, refused whole when empty, too large or not JSON",
          "[core][mcp_protocol]")
{
  CHECK_FALSE(mcp::parse_batch(R"({"jsonrpc":"2.0","id":1,"method":"ping"})"));
  const auto batch = mcp::parse_batch(
      R"( [{"jsonrpc":"2.0","id":1,"method":"ping"},[1],{"jsonrpc":"2.0","method":"x"}])");
  REQUIRE(batch);
  REQUIRE(batch->messages.size() == 3);
  CHECK(batch->messages[0].kind == mcp::Message::Kind::request);
  CHECK(batch->messages[1].kind == mcp::Message::Kind::invalid);
  CHECK(batch->messages[2].kind == mcp::Message::Kind::notification);
  CHECK_FALSE(batch->refused);
  CHECK(mcp::parse_batch("[]")->refused);
  CHECK(mcp::parse_batch("[1,")->refused->error.code == mcp::kParseError);
  std::string large = "[";
  for (std::size_t i = 0; i <= mcp::kMaxBatch; ++i) {
    large += (i == 0 ? "" : ",") + std::string(R"({"jsonrpc":"2.0","method":"x"})");
  }
  large += "]";
  CHECK(mcp::parse_batch(large)->refused);
  CHECK(mcp::batches_allowed("2024-11-05"));
  CHECK(mcp::batches_allowed("2025-03-26"));
  CHECK_FALSE(mcp::batches_allowed("2025-06-18"));
  CHECK(mcp::batch_response({"1", "2"}) == "[1,2]");
}

TEST_CASE("partial output in a progress note reaches the MCP progress message",
          "[core][mcp_protocol][stream]")
{
  const auto t0 = mcp::CallTranslator::Clock::now();
  const std::string note = "streaming from glm-4.5 (11 chars): Hello world";
  mcp::CallTranslator bridged(1, "tok", t0);
  const auto out = bridged.on_frame({{"op", "progress"}, {"note", note}}, t0);
  REQUIRE(out.size() == 1);
  CHECK(json::parse(out[0])["params"]["message"] == note);
  mcp::CallTranslator http(2, "tok", t0);
  const auto direct = http.on_progress(note, t0);
  REQUIRE(direct);
  CHECK(json::parse(*direct)["params"]["message"] == note);
}
