// exai serve end to end: the operations after hello and the error frames for
// bad input; the connection stays usable after each (SPEC §2).

#include "tests/support/serve_process.hpp"
#include "tests/support/ws_client.hpp"

#include <catch2/catch.hpp>

namespace {

using namespace exai::test;
using nlohmann::json;
using namespace std::chrono_literals;

const std::string kOpsToken = "correct-horse-battery-staple";

// The connection still answers: list_tools with a request id round-trips.
void
require_still_working(WsClient& client, const std::string& request_id = "still-there")
{
  client.send_json({{"op", "list_tools"}, {"request_id", request_id}});
  const auto reply = client.recv_until(
      [&](const json& f) { return f.value("op", "") == "list_tools_res"; }, deadline_in(5s));
  REQUIRE(reply);
  CHECK(reply->at("request_id") == request_id);
  CHECK(reply->at("tools").is_array());
}

struct Greeted {
  std::unique_ptr<ServeProcess> serve;
  std::unique_ptr<WsClient> client;
};

Greeted
greeted(ServeProcess::Env env = {})
{
  Greeted g;
  g.serve = ServeProcess::start_ready(std::move(env));
  g.client = std::make_unique<WsClient>(g.serve->port());
  const auto ack = g.client->hello(kOpsToken);
  REQUIRE(ack);
  REQUIRE(ack->at("ok") == true);
  return g;
}

} // namespace

TEST_CASE("an unknown op gets PROTOCOL_ERROR naming the operation", "[e2e][serve][ops]")
{
  auto g = greeted();
  g.client->send_json({{"op", "frobnicate"}});
  const auto reply = g.client->recv_json(deadline_in(5s));
  REQUIRE(reply);
  CHECK(reply->at("op") == "error");
  CHECK(reply->at("error").at("code") == "PROTOCOL_ERROR");
  CHECK(reply->at("error").at("message") == "Unknown operation: frobnicate");
  CHECK(reply->at("error").at("details").at("operation") == "frobnicate");
  require_still_working(*g.client);
}

TEST_CASE("malformed frames get an error frame and the connection stays open", "[e2e][serve][ops]")
{
  auto g = greeted();
  struct Case {
    std::string frame;
    std::string code;
  };
  const auto bad =
      GENERATE(Case{"{not json", "VALIDATION_ERROR"},
               Case{"[1,2,3]", "VALIDATION_ERROR"},
               Case{"\"hello\"", "VALIDATION_ERROR"},
               Case{R"({"no_op":1})", "INVALID_REQUEST"},
               Case{R"({"op":5})", "INVALID_REQUEST"},
               Case{R"({"op":"call_tool","name":"chat"})", "VALIDATION_ERROR"},
               Case{R"({"op":"call_tool","request_id":7,"name":"chat"})", "VALIDATION_ERROR"},
               Case{R"({"op":"cancel_tool"})", "VALIDATION_ERROR"});
  CAPTURE(bad.frame);
  g.client->send_text(bad.frame);
  const auto reply = g.client->recv_json(deadline_in(5s));
  REQUIRE(reply);
  CHECK(reply->at("op") == "error");
  CHECK(reply->at("error").at("code") == bad.code);
  require_still_working(*g.client);
}

TEST_CASE("a call_tool with a usable request_id but bad fields gets its own call_tool_res",
          "[e2e][serve][ops]")
{
  auto g = greeted();
  const auto bad = GENERATE(json{{"op", "call_tool"}, {"request_id", "r1"}},
                            json{{"op", "call_tool"}, {"request_id", "r1"}, {"name", 3}},
                            json{{"op", "call_tool"},
                                 {"request_id", "r1"},
                                 {"name", "chat"},
                                 {"arguments", "not an object"}});
  CAPTURE(bad.dump());
  g.client->send_json(bad);
  const auto reply = g.client->recv_json(deadline_in(5s));
  REQUIRE(reply);
  CHECK(reply->at("op") == "call_tool_res");
  CHECK(reply->at("request_id") == "r1");
  CHECK(reply->at("error").at("code") == "VALIDATION_ERROR");
  require_still_working(*g.client);
}

TEST_CASE("a valid call_tool ends in exactly one call_tool_res with its request_id",
          "[e2e][serve][ops]")
{
  auto g = greeted();
  g.client->send_json({{"op", "call_tool"},
                       {"request_id", "call-1"},
                       {"name", "version_EXAI-WS"},
                       {"arguments", json::object()}});
  const auto result = g.client->recv_until(
      [](const json& f) { return f.value("op", "") == "call_tool_res"; }, deadline_in(30s));
  REQUIRE(result);
  CHECK(result->at("request_id") == "call-1");
  CHECK((result->contains("outputs") || result->contains("error")));
  require_still_working(*g.client);
}

TEST_CASE("cancel_tool for an unknown call gets INVALID_REQUEST with its request_id",
          "[e2e][serve][ops]")
{
  auto g = greeted();
  g.client->send_json({{"op", "cancel_tool"}, {"request_id", "nope"}});
  const auto reply = g.client->recv_json(deadline_in(5s));
  REQUIRE(reply);
  CHECK(reply->at("op") == "error");
  CHECK(reply->at("request_id") == "nope");
  CHECK(reply->at("error").at("code") == "INVALID_REQUEST");
}

TEST_CASE("list_tools and health answer and echo the request_id", "[e2e][serve][ops]")
{
  auto g = greeted();
  require_still_working(*g.client, "lt-1");
  g.client->send_json({{"op", "health"}, {"request_id", "h-1"}});
  const auto health = g.client->recv_json(deadline_in(5s));
  REQUIRE(health);
  CHECK(health->at("op") == "health_res");
  CHECK(health->at("ok") == true);
  CHECK(health->at("request_id") == "h-1");
  CHECK(health->at("health").is_object());
  CHECK(health->at("health").at("connections") == 1);
}

TEST_CASE("a binary frame holding JSON is handled like a text frame", "[e2e][serve][ops]")
{
  auto g = greeted();
  g.client->send_binary(R"({"op":"list_tools","request_id":"bin"})");
  const auto reply = g.client->recv_json(deadline_in(5s));
  REQUIRE(reply);
  CHECK(reply->at("op") == "list_tools_res");
  CHECK(reply->at("request_id") == "bin");
}

TEST_CASE("rotate_token checks its parameters and replaces the token in memory",
          "[e2e][serve][ops][auth]")
{
  auto g = greeted({{"EXAI_WS_TOKEN", kOpsToken}});
  const auto rotate = [&](json frame) {
    frame["op"] = "rotate_token";
    g.client->send_json(frame);
    const auto reply = g.client->recv_json(deadline_in(5s));
    REQUIRE(reply);
    CHECK(reply->at("op") == "rotate_token_res");
    return *reply;
  };
  const std::string fresh = "a-brand-new-token-0123";
  CHECK(rotate({{"old", kOpsToken}}).at("error") == "missing_params");
  CHECK(rotate({{"new", fresh}}).at("error") == "missing_params");
  CHECK(rotate({{"old", "wrong-token-wrong-token"}, {"new", fresh}}).at("error") == "unauthorized");
  CHECK(rotate({{"old", kOpsToken}, {"new", "short"}}).at("error") == "too_short");
  CHECK(rotate({{"old", kOpsToken}, {"new", fresh}}).at("ok") == true);

  WsClient with_old(g.serve->port());
  const auto refused = with_old.hello(kOpsToken);
  REQUIRE(refused);
  CHECK(refused->at("error") == "unauthorized");
  CHECK(with_old.wait_close(deadline_in(5s)) == 4003);
  WsClient with_new(g.serve->port());
  const auto accepted = with_new.hello(fresh);
  REQUIRE(accepted);
  CHECK(accepted->at("ok") == true);
}

TEST_CASE("a message split into fragments is reassembled", "[e2e][serve][ops]")
{
  auto g = greeted();
  constexpr int kFin = Poco::Net::WebSocket::FRAME_FLAG_FIN;
  g.client->send_frame(R"({"op":"list_tools",)", Poco::Net::WebSocket::FRAME_OP_TEXT);
  g.client->send_frame(R"("request_id":)", Poco::Net::WebSocket::FRAME_OP_CONT);
  g.client->send_frame(R"("frag"})", kFin | Poco::Net::WebSocket::FRAME_OP_CONT);
  const auto reply = g.client->recv_json(deadline_in(5s));
  REQUIRE(reply);
  CHECK(reply->at("op") == "list_tools_res");
  CHECK(reply->at("request_id") == "frag");
}
