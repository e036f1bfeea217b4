// /mcp on the real `exai serve`: the route is wired, and its session, Origin,
// token and method rules hold on the daemon's port (the JSON-RPC details are
// covered by tests/net/mcp_http_test.cpp and the SDK tests in tests/mcp).

#include "tests/support/serve_process.hpp"

#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <istream>
#include <map>
#include <sstream>
#include <string>

namespace {

using exai::test::ServeProcess;
using nlohmann::json;

const std::string kMcpToken = "e2e-mcp-token-0123456789abcdef";

struct Reply {
  int status = 0;
  std::string session;
  std::string body;
};

Reply
http(std::uint16_t port,
     const std::string& method,
     const std::string& body,
     const std::map<std::string, std::string>& headers)
{
  Poco::Net::HTTPClientSession session("127.0.0.1", port);
  session.setTimeout(Poco::Timespan(10, 0));
  Poco::Net::HTTPRequest request(method, "/mcp", Poco::Net::HTTPMessage::HTTP_1_1);
  request.set("Accept", "application/json, text/event-stream");
  for (const auto& [name, value] : headers) {
    request.set(name, value);
  }
  if (!body.empty()) {
    request.setContentType("application/json");
    request.setContentLength(static_cast<std::streamsize>(body.size()));
  }
  session.sendRequest(request) << body;
  Poco::Net::HTTPResponse response;
  std::istream& in = session.receiveResponse(response);
  std::ostringstream text;
  text << in.rdbuf();
  return {static_cast<int>(response.getStatus()), response.get("Mcp-Session-Id", ""), text.str()};
}

const std::string kInitialize =
    R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{}}})";
const std::string kPing = R"({"jsonrpc":"2.0","id":2,"method":"ping"})";

} // namespace

TEST_CASE("exai serve answers MCP Streamable HTTP on /mcp", "[e2e][mcp_http]")
{
  const auto serve = ServeProcess::start_ready({{"EXAI_WS_TOKEN", kMcpToken}});
  const auto port = serve->port();
  const std::map<std::string, std::string> auth = {{"Authorization", "Bearer " + kMcpToken}};

  const auto init = http(port, "POST", kInitialize, auth);
  REQUIRE(init.status == 200);
  REQUIRE_FALSE(init.session.empty());
  CHECK(json::parse(init.body)["result"]["serverInfo"]["name"] == "exai");

  auto with_session = auth;
  with_session["Mcp-Session-Id"] = init.session;
  CHECK(http(port, "POST", kPing, with_session).status == 200);

  SECTION("a missing or unknown session is refused")
  {
    CHECK(http(port, "POST", kPing, auth).status == 400);
    auto unknown = auth;
    unknown["Mcp-Session-Id"] = "ffffffffffffffffffffffffffffffff";
    CHECK(http(port, "POST", kPing, unknown).status == 404);
  }
  SECTION("a foreign Origin is 403")
  {
    auto foreign = with_session;
    foreign["Origin"] = "https://evil.example";
    CHECK(http(port, "POST", kPing, foreign).status == 403);
  }
  SECTION("a wrong bearer token is 401")
  {
    CHECK(http(port, "POST", kInitialize, {{"Authorization", "Bearer wrong"}}).status == 401);
    CHECK(http(port, "POST", kInitialize, {}).status == 401);
  }
  SECTION("GET is 405")
  {
    CHECK(http(port, "GET", {}, with_session).status == 405);
  }
  SECTION("DELETE ends the session")
  {
    CHECK(http(port, "DELETE", {}, with_session).status == 204);
    CHECK(http(port, "POST", kPing, with_session).status == 404);
  }
}
