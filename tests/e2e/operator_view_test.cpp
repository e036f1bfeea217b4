// The operator view end to end: the page at /, its snapshot GET /api/top
// (token, Host/Origin, CSP, EXAI_UI, EXAI_UI_SHOW_CONTENT) and calls in
// flight appearing and leaving while the fake upstream holds them.

#include "tests/support/operator_view.hpp"

#include <catch2/catch.hpp>

#include <functional>
#include <thread>

using namespace exai::test;
using namespace exai::test::operator_view;
using nlohmann::json;
using namespace std::chrono_literals;

TEST_CASE("the page is served at / with a strict Content-Security-Policy", "[e2e][ui]")
{
  FakeUpstream fake;
  auto serve = daemon(fake);
  const auto page = get(serve->port(), "/");
  CHECK(page.status == 200);
  CHECK(page.headers.at("Content-Type").starts_with("text/html"));
  const std::string csp = page.headers.at("Content-Security-Policy");
  CHECK(csp.find("default-src 'self'") != std::string::npos);
  CHECK(csp.find("frame-ancestors 'none'") != std::string::npos);
  CHECK(csp.find("unsafe-inline") == std::string::npos);
  CHECK(csp.find("unsafe-eval") == std::string::npos);
  CHECK(page.body.find("<script src=\"/ui/app.js\"") != std::string::npos);
  CHECK(page.body.find("<script>") == std::string::npos); // nothing inline
  CHECK(page.body.find("style=") == std::string::npos);
  CHECK(page.body.find("http://") == std::string::npos); // no CDN, no external font
  CHECK(page.body.find("https://") == std::string::npos);

  const auto script = get(serve->port(), "/ui/app.js");
  CHECK(script.status == 200);
  CHECK(script.headers.at("Content-Type").starts_with("text/javascript"));
  CHECK(script.headers.count("Content-Security-Policy") == 1);
  CHECK(script.body.find("sessionStorage") != std::string::npos);
  const auto style = get(serve->port(), "/ui/app.css");
  CHECK(style.status == 200);
  CHECK(style.headers.at("Content-Type").starts_with("text/css"));
}

TEST_CASE("GET /api/top needs the bearer token, never one in the URL or a cookie", "[e2e][ui]")
{
  FakeUpstream fake;
  auto serve = daemon(fake);
  CHECK(get(serve->port(), "/api/top").status == 401);
  CHECK(get(serve->port(), "/api/top", bearer("operator-view-token-wrong-000")).status == 401);
  CHECK(get(serve->port(), std::string("/api/top?token=") + kToken).status == 401);
  CHECK(get(serve->port(), "/api/top", {{"Cookie", std::string("token=") + kToken}}).status == 401);
  const auto ok = get(serve->port(), "/api/top", bearer());
  CHECK(ok.status == 200);
  CHECK(ok.headers.count("Content-Security-Policy") == 1);
  CHECK(ok.headers.count("WWW-Authenticate") == 0);
  const json doc = json::parse(ok.body);
  CHECK(doc["version"] == 1);
  CHECK(doc["daemon"]["state"] == "serving");
  CHECK(doc["inflight"].empty());
  CHECK(doc["scopes"][0]["name"] == "global");
  CHECK(doc["show_content"] == false);
}

TEST_CASE("the operator view refuses a foreign Host or Origin", "[e2e][ui]")
{
  FakeUpstream fake;
  auto serve = daemon(fake);
  for (const char* path : {"/", "/ui/app.js", "/api/top"}) {
    CAPTURE(path);
    auto headers = bearer();
    headers["Host"] = "rebind.attacker.example";
    CHECK(get(serve->port(), path, headers).status == 403);
    headers = bearer();
    headers["Origin"] = "http://attacker.example";
    CHECK(get(serve->port(), path, headers).status == 403);
  }
  auto local = bearer();
  local["Host"] = "localhost:8079";
  local["Origin"] = "http://localhost:8079";
  CHECK(get(serve->port(), "/api/top", local).status == 200);
}

TEST_CASE("EXAI_UI=false turns the page and its API off", "[e2e][ui]")
{
  FakeUpstream fake;
  auto serve = daemon(fake, {{"EXAI_UI", "false"}});
  CHECK(get(serve->port(), "/").status == 404);
  CHECK(get(serve->port(), "/ui/app.js").status == 404);
  CHECK(get(serve->port(), "/api/top", bearer()).status == 404);
  CHECK(get(serve->port(), "/health", bearer()).status == 200);
}

TEST_CASE("a slow call appears in flight without its prompt, then moves to recent calls",
          "[e2e][ui]")
{
  FakeUpstream fake;
  auto serve = daemon(fake, {{"EXAI_WS_GLM_MAX_INFLIGHT", "1"}});
  WsClient client(serve->port());
  REQUIRE(client.hello(std::string(kToken)));
  start_chat(client, "slow-1", "secret prompt text [[hang]]");
  // Waits for the provider scope; once admitted it answers at once (a
  // [[hang]] reaching the fake after release_hangs() would hang again).
  start_chat(client, "slow-2", "second secret prompt");

  // The scopes and the calls are read one after the other: wait until both
  // show the second call waiting.
  const auto glm_full = [](const json& doc) {
    for (const auto& scope : doc["scopes"]) {
      if (scope["name"] == "provider glm") {
        return scope["in_use"] == 1 && scope["waiting"] == 1 && scope["capacity"] == 1;
      }
    }
    return false;
  };
  const json busy = snapshot_until(serve->port(), [&glm_full](const json& doc) {
    const json* first = find_call(doc, "slow-1");
    const json* second = find_call(doc, "slow-2");
    return first != nullptr && (*first)["state"] == "running" && second != nullptr &&
           (*second)["waiting_for"] != "" && glm_full(doc);
  });
  const json* first = find_call(busy, "slow-1");
  const json* second = find_call(busy, "slow-2");
  REQUIRE(first != nullptr);
  REQUIRE(second != nullptr);
  CHECK((*first)["tool"] == "chat");
  CHECK((*first)["provider"] == "glm");
  CHECK((*first)["model"] == "glm-4.5");
  CHECK((*first)["state"] == "running");
  CHECK((*first)["session"].get<std::string>().size() <= 12);
  CHECK((*second)["state"] == "waiting");
  CHECK((*second)["waiting_for"] == "provider (glm)");
  CHECK(busy["inflight"][0]["elapsed_ms"] >= busy["inflight"][1]["elapsed_ms"]); // longest first
  CHECK(busy.dump().find("secret prompt") == std::string::npos);
  CHECK(glm_full(busy));

  release_after(fake, 1);
  int results = 0;
  REQUIRE(client.recv_until(
      [&results](const json& f) { return f.value("op", "") == "call_tool_res" && ++results == 2; },
      deadline_in(10s)));
  const json done = snapshot_until(serve->port(), [](const json& doc) {
    return doc["inflight"].empty() && doc["recent"].size() >= 2;
  });
  CHECK(done["inflight"].empty());
  REQUIRE(done["recent"].size() >= 2);
  CHECK(done["recent"][0]["tool"] == "chat");
  CHECK(done["recent"][0]["outcome"] == "ok");
  CHECK(done["recent"][0].contains("duration_ms"));
  CHECK(done.dump().find("secret prompt") == std::string::npos);
  REQUIRE_FALSE(done["per_minute"].empty());
  CHECK(done["per_minute"].back()["calls"] >= 2);
  CHECK(done["counters"]["ok"] == 2);
}

TEST_CASE("EXAI_UI_SHOW_CONTENT=true shows prompt and answer excerpts", "[e2e][ui]")
{
  FakeUpstream fake;
  auto serve = daemon(fake, {{"EXAI_UI_SHOW_CONTENT", "true"}});
  WsClient client(serve->port());
  REQUIRE(client.hello(std::string(kToken)));
  start_chat(client, "shown", "visible prompt text [[hang]]");
  const json busy =
      snapshot_until(serve->port(), [](const json& doc) { return has_call(doc, "shown"); });
  const json* call = find_call(busy, "shown");
  REQUIRE(call != nullptr);
  CHECK((*call)["prompt"].get<std::string>().find("visible prompt text") != std::string::npos);
  CHECK(busy["show_content"] == true);

  release_after(fake, 1);
  REQUIRE(client.recv_until([](const json& f) { return f.value("op", "") == "call_tool_res"; },
                            deadline_in(10s)));
  const json done =
      snapshot_until(serve->port(), [](const json& doc) { return !doc["recent"].empty(); });
  REQUIRE_FALSE(done["recent"].empty());
  CHECK(done["recent"][0]["prompt"].get<std::string>().find("visible prompt text") !=
        std::string::npos);
  CHECK(done["recent"][0].contains("output"));
}

TEST_CASE("a call whose streamed answer is arriving shows as streaming", "[e2e][ui]")
{
  FakeUpstream fake;
  auto serve = daemon(fake);
  WsClient client(serve->port());
  REQUIRE(client.hello(std::string(kToken)));
  start_chat(client, "streamed", "a long answer [[chunks=100]][[chunk_ms=100]]");
  REQUIRE(client.recv_until(
      [](const json& f) {
        return f.value("op", "") == "progress" &&
               f.value("note", "").rfind("streaming from ", 0) == 0;
      },
      deadline_in(10s)));
  const json doc = snapshot_until(serve->port(), [](const json& d) {
    const json* call = find_call(d, "streamed");
    return call != nullptr && (*call)["state"] == "streaming";
  });
  const json* call = find_call(doc, "streamed");
  REQUIRE(call != nullptr);
  CHECK((*call)["state"] == "streaming");
  client.send_json({{"op", "cancel_tool"}, {"request_id", "streamed"}});
  REQUIRE(client.recv_until([](const json& f) { return f.value("op", "") == "call_tool_res"; },
                            deadline_in(5s)));
  const json done =
      snapshot_until(serve->port(), [](const json& d) { return d["inflight"].empty(); });
  CHECK(done["inflight"].empty());
}
