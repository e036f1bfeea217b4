// exai serve end to end: admission, frame size, Origin and keep-alive limits.

#include "tests/support/serve_process.hpp"
#include "tests/support/ws_client.hpp"

#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <catch2/catch.hpp>

#include <sstream>

namespace {

using namespace exai::test;
using nlohmann::json;
using namespace std::chrono_literals;

WsClientOptions
with_origin(const std::string& origin)
{
  WsClientOptions options;
  options.headers["Origin"] = origin;
  return options;
}

bool
answers_list_tools(WsClient& client)
{
  client.send_json({{"op", "list_tools"}, {"request_id", "alive"}});
  const auto reply = client.recv_until(
      [](const json& f) { return f.value("op", "") == "list_tools_res"; }, deadline_in(5s));
  return reply.has_value();
}

} // namespace

TEST_CASE("a frame larger than EXAI_WS_MAX_BYTES closes the connection with 1009",
          "[e2e][serve][limits]")
{
  auto serve = ServeProcess::start_ready({{"EXAI_WS_MAX_BYTES", "2048"}});
  WsClient client(serve->port());
  REQUIRE(client.hello());
  client.send_text(std::string(1000, ' ') + R"({"op":"list_tools"})"); // fits
  REQUIRE(client.recv_json(deadline_in(5s)));
  client.send_text(std::string(4096, ' ') + R"({"op":"list_tools"})");
  CHECK(client.wait_close(deadline_in(5s)) == 1009);
}

TEST_CASE("an upgrade from a foreign Origin is refused with 403", "[e2e][serve][origin]")
{
  auto serve = ServeProcess::start_ready({{"EXAI_ALLOWED_ORIGINS", "https://ide.example:8443"}});
  const auto port = serve->port();
  CHECK(WsClient::upgrade_status(port, with_origin("http://evil.example")) == 403);
  CHECK(WsClient::upgrade_status(port, with_origin("http://127.0.0.1.evil.example")) == 403);
  CHECK(WsClient::upgrade_status(port, with_origin("null")) == 403);
  CHECK(WsClient::upgrade_status(port, with_origin("http://localhost:3000")) == 101);
  CHECK(WsClient::upgrade_status(port, with_origin("https://127.0.0.1")) == 101);
  CHECK(WsClient::upgrade_status(port, with_origin("http://[::1]:8080")) == 101);
  CHECK(WsClient::upgrade_status(port, with_origin("https://ide.example:8443")) == 101);
  CHECK(WsClient::upgrade_status(port) == 101); // no Origin: not a browser
  WsClient allowed(port, with_origin("http://localhost:5173"));
  CHECK(allowed.hello());
}

TEST_CASE("every loopback address is one local peer, not limited by MAX_CONNECTIONS_PER_IP",
          "[e2e][serve][limits]")
{
  // On a workstation every client is local: a per-IP cap on loopback would
  // silently make MAX_CONNECTIONS the per-IP figure (remote peers: net tests).
  auto serve = ServeProcess::start_ready({{"MAX_CONNECTIONS_PER_IP", "2"}});
  std::vector<std::unique_ptr<WsClient>> clients;
  for (int i = 0; i < 6; ++i) { // from 127.0.0.1, three times the per-IP cap
    clients.push_back(std::make_unique<WsClient>(serve->port()));
    REQUIRE(clients.back()->hello());
  }
  for (auto& client : clients) {
    CHECK(answers_list_tools(*client));
  }
}

TEST_CASE("a greeted connection beyond MAX_CONNECTIONS is closed with 1008 and counts nowhere",
          "[e2e][serve][limits]")
{
  auto serve = ServeProcess::start_ready({{"MAX_CONNECTIONS", "1"}});
  auto first = std::make_unique<WsClient>(serve->port());
  REQUIRE(first->hello());
  {
    WsClient second(serve->port());
    second.send_json({{"op", "hello"}});
    CHECK(second.wait_close(deadline_in(5s)) == 1008);
    CHECK(second.close_reason().find("MAX_CONNECTIONS") != std::string::npos);
  }
  CHECK(answers_list_tools(*first));
  // Admission counts live connections only: the place is free once the
  // first one is gone.
  first->close();
  first.reset();
  bool admitted = false;
  for (int attempt = 0; attempt < 50 && !admitted; ++attempt) {
    WsClient again(serve->port());
    admitted = again.hello(std::nullopt, deadline_in(2s)).has_value() && !again.closed();
    if (admitted) {
      CHECK(answers_list_tools(again));
    }
  }
  CHECK(admitted);
}

TEST_CASE("a client answering pings stays connected, one that does not is dropped",
          "[e2e][serve][keepalive]")
{
  auto serve = ServeProcess::start_ready(
      {{"EXAI_WS_PING_INTERVAL", "0.2"}, {"EXAI_WS_PING_TIMEOUT", "0.3"}});
  WsClient answering(serve->port());
  WsClient silent(serve->port());
  silent.set_auto_pong(false);
  REQUIRE(answering.hello());
  REQUIRE(silent.hello());
  // The answering client reads (answering several pings) well past interval +
  // timeout; the silent one ignores its pings meanwhile and is dropped.
  CHECK_FALSE(answering.recv_frame(deadline_in(1500ms)));
  CHECK_FALSE(answering.closed());
  CHECK(silent.wait_close(deadline_in(5s)).has_value());
  CHECK(answers_list_tools(answering));
}

TEST_CASE("plain HTTP on the daemon port answers 404 JSON for unknown paths", "[e2e][serve][http]")
{
  auto serve = ServeProcess::start_ready();
  Poco::Net::HTTPClientSession session("127.0.0.1", serve->port());
  Poco::Net::HTTPRequest request(Poco::Net::HTTPRequest::HTTP_GET, "/no-such-path");
  session.sendRequest(request);
  Poco::Net::HTTPResponse response;
  std::istream& body = session.receiveResponse(response);
  std::ostringstream text;
  text << body.rdbuf();
  CHECK(response.getStatus() == Poco::Net::HTTPResponse::HTTP_NOT_FOUND);
  const auto parsed = json::parse(text.str(), nullptr, false);
  REQUIRE(parsed.is_object());
  CHECK(parsed.at("error").at("code") == "NOT_FOUND");
}

TEST_CASE("a connection that sends no message for SESSION_TIMEOUT_SECS is closed with 1000",
          "[e2e][serve][limits]")
{
  auto serve = ServeProcess::start_ready({{"SESSION_TIMEOUT_SECS", "1"},
                                          {"EXAI_WS_PING_INTERVAL", "0.2"},
                                          {"EXAI_WS_PING_TIMEOUT", "5"}});
  WsClient client(serve->port()); // answers pings: alive, but idle
  REQUIRE(client.hello());
  const auto started = std::chrono::steady_clock::now();
  CHECK(client.wait_close(deadline_in(10s)) == 1000);
  CHECK(std::chrono::steady_clock::now() - started >= 800ms);
  CHECK(client.close_reason() == "session idle timeout");
}
