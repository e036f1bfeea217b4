// exai serve end to end: the hello handshake and its close codes (SPEC §2).

#include "tests/support/serve_process.hpp"
#include "tests/support/ws_client.hpp"

#include <catch2/catch.hpp>

#include <regex>

namespace {

using namespace exai::test;
using namespace std::chrono_literals;

const std::string kHandshakeToken = "correct-horse-battery-staple";

// The hello_ack that refuses with `error`, then the server's close `code`.
void
check_refused(WsClient& client, const std::string& error, int code)
{
  const auto ack = client.recv_json(deadline_in(5s));
  REQUIRE(ack);
  CHECK(*ack == nlohmann::json{{"op", "hello_ack"}, {"ok", false}, {"error", error}});
  CHECK(client.wait_close(deadline_in(5s)) == code);
}

} // namespace

TEST_CASE("hello with the right token is acknowledged with a random URL-safe session id",
          "[e2e][serve][hello]")
{
  auto serve = ServeProcess::start_ready({{"EXAI_WS_TOKEN", kHandshakeToken}});
  WsClient a(serve->port());
  WsClient b(serve->port());
  const auto ack_a = a.hello(kHandshakeToken);
  const auto ack_b = b.hello(kHandshakeToken);
  REQUIRE(ack_a);
  REQUIRE(ack_b);
  CHECK(ack_a->at("ok") == true);
  const auto id = ack_a->at("session_id").get<std::string>();
  CHECK(std::regex_match(id, std::regex("[A-Za-z0-9_-]{22,}")));
  CHECK(id != ack_b->at("session_id").get<std::string>());
}

TEST_CASE("hello is accepted without a token when none is configured", "[e2e][serve][hello]")
{
  auto serve = ServeProcess::start_ready();
  WsClient client(serve->port());
  const auto ack = client.hello();
  REQUIRE(ack);
  CHECK(ack->at("ok") == true);
}

TEST_CASE("a first frame that is not JSON gets invalid_hello and close 4000", "[e2e][serve][hello]")
{
  auto serve = ServeProcess::start_ready();
  WsClient client(serve->port());
  client.send_text("this is not json");
  check_refused(client, "invalid_hello", 4000);
}

TEST_CASE("a first op other than hello gets missing_hello and close 4001", "[e2e][serve][hello]")
{
  auto serve = ServeProcess::start_ready();
  WsClient client(serve->port());
  client.send_json({{"op", "list_tools"}});
  check_refused(client, "missing_hello", 4001);
}

TEST_CASE("no frame within the hello timeout closes with 4002 and sends nothing",
          "[e2e][serve][hello]")
{
  auto serve = ServeProcess::start_ready({{"EXAI_WS_HELLO_TIMEOUT", "0.3"}});
  WsClient client(serve->port());
  const auto started = std::chrono::steady_clock::now();
  CHECK_FALSE(client.recv_frame(deadline_in(5s))); // no data frame, only the close
  CHECK(client.close_code() == 4002);
  CHECK(std::chrono::steady_clock::now() - started >= 250ms);
}

TEST_CASE("a wrong or missing token gets unauthorized and close 4003", "[e2e][serve][hello]")
{
  auto serve = ServeProcess::start_ready({{"EXAI_WS_TOKEN", kHandshakeToken}});
  WsClient client(serve->port());
  SECTION("wrong token")
  {
    client.send_json({{"op", "hello"}, {"token", kHandshakeToken + "x"}});
  }
  SECTION("missing token")
  {
    client.send_json({{"op", "hello"}});
  }
  SECTION("token of the wrong type")
  {
    client.send_json({{"op", "hello"}, {"token", 42}});
  }
  check_refused(client, "unauthorized", 4003);
}

TEST_CASE("a client resumes its session with the id it was given", "[e2e][serve][hello]")
{
  auto serve = ServeProcess::start_ready();
  std::string id;
  {
    WsClient first(serve->port());
    const auto ack = first.hello();
    REQUIRE(ack);
    id = ack->at("session_id").get<std::string>();
    first.close();
  }
  WsClient second(serve->port());
  second.send_json({{"op", "hello"}, {"session_id", id}});
  const auto resumed = second.recv_json(deadline_in(5s));
  REQUIRE(resumed);
  CHECK(resumed->at("session_id") == id);

  WsClient third(serve->port());
  third.send_json({{"op", "hello"}, {"session_id", "never-issued-by-this-daemon"}});
  const auto fresh = third.recv_json(deadline_in(5s));
  REQUIRE(fresh);
  CHECK(fresh->at("ok") == true);
  CHECK(fresh->at("session_id") != "never-issued-by-this-daemon");
}
