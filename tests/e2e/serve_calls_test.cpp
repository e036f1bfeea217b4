// exai serve end to end: call semantics (SPEC §3) through the real binary
// against a fake upstream the test controls. After each scenario the
// daemon's own health report is back to zero.

#include "tests/support/daemon_checks.hpp"
#include "tests/support/fake_daemon.hpp"
#include "tests/support/fake_upstream.hpp"
#include "tests/support/serve_process.hpp"
#include "tests/support/test_keys.hpp"
#include "tests/support/ws_client.hpp"

#include <catch2/catch.hpp>

#include <csignal>
#include <thread>

namespace {

using namespace exai::test;
using nlohmann::json;
using namespace std::chrono_literals;

struct CallsDaemon : FakeDaemon {
  explicit CallsDaemon(const ServeProcess::Env& extra = {})
      : FakeDaemon({{"GLM_API_KEY", kGlmTestKey}, {"EXAI_WS_PROGRESS_INTERVAL_SECS", "0.1"}}, extra)
  {
  }
};

void
call(WsClient& c, const std::string& id, const std::string& tool, json args)
{
  c.send_json({{"op", "call_tool"}, {"request_id", id}, {"name", tool}, {"arguments", args}});
}

json
result_of(WsClient& c, const std::string& id, std::chrono::milliseconds limit = 10s)
{
  const auto res = c.recv_until(
      [&](const json& f) {
        return f.value("op", "") == "call_tool_res" && f.value("request_id", "") == id;
      },
      deadline_in(limit));
  REQUIRE(res);
  return *res;
}

json
envelope(const json& res)
{
  return exai::test::result_envelope(res);
}

} // namespace

TEST_CASE("a call's frames arrive in order and every one names the request", "[e2e][serve][calls]")
{
  CallsDaemon d;
  auto c = d.client();
  call(*c, "v1", "version", json::object());
  std::vector<json> frames;
  for (;;) {
    auto f = c->recv_json(deadline_in(5s));
    REQUIRE(f);
    frames.push_back(*f);
    if (f->at("op") == "call_tool_res") {
      break;
    }
  }
  REQUIRE(frames.size() >= 3);
  CHECK(frames[0]["op"] == "progress");
  CHECK(frames[0]["note"] == "accepted, awaiting provider/session capacity");
  CHECK(frames[1]["op"] == "call_tool_ack");
  CHECK(frames[1]["timeout"] == 270.0);
  for (const auto& f : frames) {
    CHECK(f["request_id"] == "v1");
  }
  CHECK(frames.back()["text"] == frames.back()["outputs"][0]["text"]);
  CHECK(d.back_to_zero());
}

TEST_CASE("chat goes to the provider with its key and returns the envelope", "[e2e][serve][calls]")
{
  CallsDaemon d;
  auto c = d.client();
  call(*c, "c1", "chat_EXAI-WS", {{"prompt", "hello there"}, {"model", "glm-4.5"}});
  const json env = envelope(result_of(*c, "c1"));
  CHECK(env["status"] == "continuation_available");
  CHECK_THAT(env["content"].get<std::string>(), Catch::Contains("hello there"));
  CHECK(env["metadata"]["provider_used"] == "glm");
  CHECK(env["metadata"]["model_used"] == "glm-4.5");
  const auto requests = d.fake.requests();
  REQUIRE(requests.size() == 1);
  CHECK(requests[0].path == "/v1/chat/completions");
  CHECK(json::parse(requests[0].body)["model"] == "glm-4.5");
  CHECK(d.serve->stderr_text().find(kGlmTestKey) == std::string::npos);
  CHECK(d.back_to_zero());
}

TEST_CASE("a full provider rejects with OVER_CAPACITY and upstream never sees more than its limit",
          "[e2e][serve][calls]")
{
  CallsDaemon d(ServeProcess::Env{{"EXAI_WS_GLM_MAX_INFLIGHT", "1"},
                                  {"EXAI_WS_ACQUIRE_TIMEOUT_SECS", "0.2"}});
  auto a = d.client();
  auto b = d.client();
  REQUIRE(start_call(*a, "a", "chat", {{"prompt", "slow [[sleep_ms=1500]]"}}));
  call(*b, "b", "chat", {{"prompt", "other [[sleep_ms=10]]"}});
  const json rejected = result_of(*b, "b");
  CHECK(rejected["error"]["code"] == "OVER_CAPACITY");
  CHECK(rejected["error"]["details"]["scope"] == "provider");
  CHECK(rejected["error"]["details"]["provider"] == "glm");
  CHECK(rejected["error"]["details"].contains("retry_after"));
  CHECK(result_of(*a, "a").contains("outputs"));
  CHECK(d.fake.peak_concurrency() == 1);
  CHECK(d.back_to_zero());
  CHECK(d.health()["counters"]["rejected"]["provider"] == 1);
}

TEST_CASE("calls queue for capacity with progress notes and run when it frees",
          "[e2e][serve][calls]")
{
  CallsDaemon d(
      ServeProcess::Env{{"EXAI_WS_GLM_MAX_INFLIGHT", "2"}, {"EXAI_WS_ACQUIRE_TIMEOUT_SECS", "20"}});
  std::vector<std::unique_ptr<WsClient>> clients;
  for (int i = 0; i < 5; ++i) {
    clients.push_back(d.client());
    call(*clients.back(),
         "q" + std::to_string(i),
         "chat",
         {{"prompt", "queued " + std::to_string(i) + " [[sleep_ms=200]]"}});
  }
  bool saw_waiting_note = false;
  for (int i = 0; i < 5; ++i) {
    const std::string id = "q" + std::to_string(i);
    const auto res = clients[static_cast<std::size_t>(i)]->recv_until(
        [&](const json& f) {
          if (f.value("op", "") == "progress" &&
              f.value("note", "").find("waiting for provider capacity") != std::string::npos) {
            saw_waiting_note = true;
          }
          return f.value("op", "") == "call_tool_res";
        },
        deadline_in(20s));
    REQUIRE(res);
    CHECK(res->contains("outputs"));
  }
  CHECK(saw_waiting_note);
  CHECK(d.fake.peak_concurrency() <= 2);
  CHECK(d.back_to_zero());
}

TEST_CASE("a hanging upstream ends in TIMEOUT at the call deadline and is aborted",
          "[e2e][serve][calls]")
{
  CallsDaemon d(ServeProcess::Env{{"EXAI_WS_CALL_TIMEOUT_SECS", "0.5"}});
  auto c = d.client();
  const auto start = std::chrono::steady_clock::now();
  call(*c, "t1", "chat", {{"prompt", "never [[hang]]"}});
  const json res = result_of(*c, "t1");
  const auto took = std::chrono::steady_clock::now() - start;
  CHECK(res["error"]["code"] == "TIMEOUT");
  CHECK(took >= 500ms);
  CHECK(took < 3s);
  // Capacity comes back only when the upstream request has returned: the
  // hanging request was aborted, not abandoned on a thread.
  CHECK(d.back_to_zero());
  CHECK(d.health()["executions"] == 0);
  d.fake.release_hangs();
}

TEST_CASE("cancel_tool ends the call with CANCELLED and frees its capacity", "[e2e][serve][calls]")
{
  CallsDaemon d;
  auto c = d.client();
  REQUIRE(start_call(*c, "x1", "chat", {{"prompt", "cancel me [[hang]]"}}));
  c->send_json({{"op", "cancel_tool"}, {"request_id", "x1"}});
  CHECK(result_of(*c, "x1")["error"]["code"] == "CANCELLED");
  CHECK(d.back_to_zero());
  d.fake.release_hangs();
}

TEST_CASE("a call survives its client's disconnect and is replayed by request_id",
          "[e2e][serve][calls]")
{
  // With a token, every session of that token owns the request id.
  const std::string token = "replay-test-token-0123456789";
  CallsDaemon d(ServeProcess::Env{{"EXAI_WS_TOKEN", token}});
  const auto with_token = [&] {
    auto c = std::make_unique<WsClient>(d.serve->port());
    REQUIRE(c->hello(token));
    return c;
  };
  {
    auto gone = with_token();
    REQUIRE(start_call(*gone, "r1", "chat", {{"prompt", "finish without me [[sleep_ms=300]]"}}));
  } // disconnected mid-call
  auto again = with_token();
  call(*again, "r1", "chat", {{"prompt", "finish without me [[sleep_ms=300]]"}});
  const json env = envelope(result_of(*again, "r1"));
  CHECK_THAT(env["content"].get<std::string>(), Catch::Contains("finish without me"));
  CHECK(d.fake.request_count() == 1); // not executed twice
  CHECK(d.back_to_zero());
}

TEST_CASE("a resumed session receives results that finished while it was away",
          "[e2e][serve][calls]")
{
  CallsDaemon d;
  std::string session;
  {
    WsClient first(d.serve->port());
    const auto ack = first.hello();
    REQUIRE(ack);
    session = ack->at("session_id");
    REQUIRE(start_call(first, "s1", "chat", {{"prompt", "while away [[sleep_ms=200]]"}}));
  }
  REQUIRE(d.back_to_zero());
  auto resumed = d.client(session);
  CHECK(result_of(*resumed, "s1").contains("outputs"));
}

TEST_CASE("identical concurrent calls share one upstream request", "[e2e][serve][calls]")
{
  CallsDaemon d(ServeProcess::Env{{"EXAI_WS_REUSE_SCOPE", "global"}});
  std::vector<std::unique_ptr<WsClient>> clients;
  for (int i = 0; i < 4; ++i) {
    clients.push_back(d.client());
  }
  for (int i = 0; i < 4; ++i) {
    call(*clients[static_cast<std::size_t>(i)],
         "same-" + std::to_string(i),
         "chat",
         {{"prompt", "the same question [[sleep_ms=400]]"}});
  }
  for (int i = 0; i < 4; ++i) {
    const json res = result_of(*clients[static_cast<std::size_t>(i)], "same-" + std::to_string(i));
    CHECK(res["request_id"] == "same-" + std::to_string(i));
    CHECK(res.contains("outputs"));
  }
  CHECK(d.fake.request_count() == 1);
  CHECK(d.back_to_zero());
}

TEST_CASE("upstream 5xx and 429 come back as error results, never a hang", "[e2e][serve][calls]")
{
  CallsDaemon d;
  auto c = d.client();
  call(*c, "e1", "chat", {{"prompt", "boom [[status=500]][[retry_after=0]]"}});
  const json res = result_of(*c, "e1", 30s);
  CHECK(res["error"]["code"] == "PROVIDER_ERROR");
  call(*c, "e2", "chat", {{"prompt", "busy [[glm_1302]][[retry_after=0]]"}});
  const json busy = result_of(*c, "e2", 30s);
  REQUIRE(busy.contains("error"));
  CHECK(busy["error"]["code"] == "OVER_CAPACITY");
  CHECK(d.back_to_zero());
}

TEST_CASE("SIGTERM lets a running call finish, then exits 0", "[e2e][serve][calls]")
{
  CallsDaemon d(ServeProcess::Env{{"EXAI_SHUTDOWN_GRACE_SECS", "10"}});
  auto c = d.client();
  REQUIRE(start_call(*c, "g1", "chat", {{"prompt", "almost done [[sleep_ms=300]]"}}));
  ::kill(d.serve->pid(), SIGTERM);
  CHECK(result_of(*c, "g1").contains("outputs"));
  CHECK(d.serve->stop(SIGTERM, 20s) == 0);
}

TEST_CASE("SIGTERM cancels calls still running after the grace with SHUTTING_DOWN",
          "[e2e][serve][calls]")
{
  CallsDaemon d(ServeProcess::Env{{"EXAI_SHUTDOWN_GRACE_SECS", "0.2"}});
  auto c = d.client();
  REQUIRE(start_call(*c, "h1", "chat", {{"prompt", "forever [[hang]]"}}));
  ::kill(d.serve->pid(), SIGTERM);
  CHECK(result_of(*c, "h1")["error"]["code"] == "SHUTTING_DOWN");
  CHECK(d.serve->stop(SIGTERM, 20s) == 0);
  d.fake.release_hangs();
}
