// exai serve end to end with streamed provider answers (EXAI_UPSTREAM_STREAM):
// the same result as without streaming, progress with partial output, stalls,
// cancellation mid-stream, and token usage in results, /metrics and /health.

#include "tests/support/daemon_checks.hpp"
#include "tests/support/fake_daemon.hpp"
#include "tests/support/fake_upstream.hpp"
#include "tests/support/serve_process.hpp"
#include "tests/support/ws_client.hpp"

#include <catch2/catch.hpp>

namespace {

using namespace exai::test;
using nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

struct StreamDaemon : FakeDaemon {
  explicit StreamDaemon(const ServeProcess::Env& extra = {})
      : FakeDaemon({{"GLM_API_KEY", "glm-stream-key-0123456789"},
                    {"KIMI_API_KEY", "kimi-stream-key-0123456789"},
                    {"EXAI_WS_PROGRESS_INTERVAL_SECS", "30"}},
                   extra)
  {
  }
};

json
chat(WsClient& c,
     const std::string& id,
     const std::string& prompt,
     const std::string& model = "glm-4.5")
{
  const auto res = exai::test::call_tool(c, id, "chat", {{"prompt", prompt}, {"model", model}});
  REQUIRE(res);
  return *res;
}

bool
is_partial(const json& frame, const std::string& id)
{
  return frame.value("op", "") == "progress" && frame.value("request_id", "") == id &&
         frame.value("note", "").rfind("streaming from ", 0) == 0;
}

} // namespace

TEST_CASE("a streamed chat through exai serve gives the non-streamed result",
          "[e2e][serve][stream]")
{
  StreamDaemon streaming;
  StreamDaemon plain(ServeProcess::Env{{"EXAI_UPSTREAM_STREAM", "false"}});
  for (const std::string model : {"glm-4.5", "kimi-k2-0905-preview"}) {
    INFO(model);
    const std::string prompt = "same answer [[cached=5]][[chunks=5]] " + model;
    auto a = streaming.client();
    auto b = plain.client();
    const json streamed = exai::test::result_envelope(chat(*a, "s1", prompt, model));
    const json whole = exai::test::result_envelope(chat(*b, "p1", prompt, model));
    CHECK(streamed["content"] == whole["content"]);
    CHECK(streamed["status"] == whole["status"]);
    CHECK(streamed["metadata"]["usage"] == whole["metadata"]["usage"]);
    CHECK(streamed["metadata"]["tokens"] == whole["metadata"]["tokens"]);
    CHECK(streamed["metadata"]["tokens"]["cached"] == 5);
    CHECK(streamed["metadata"]["model_used"] == whole["metadata"]["model_used"]);
    CHECK(streamed["metadata"]["streamed"] == true);
    CHECK(whole["metadata"]["streamed"] == false);
    CHECK(streamed["metadata"].contains("time_to_first_token_ms"));
    CHECK_FALSE(whole["metadata"].contains("time_to_first_token_ms"));
  }
  for (const auto& r : streaming.fake.requests()) {
    CHECK(r.streamed);
  }
  for (const auto& r : plain.fake.requests()) {
    CHECK_FALSE(r.streamed);
  }
  CHECK(streaming.back_to_zero());
  CHECK(plain.back_to_zero());
}

TEST_CASE("progress notes carry the partial output, at most one per 250 ms", "[e2e][serve][stream]")
{
  StreamDaemon d;
  auto c = d.client();
  c->send_json({{"op", "call_tool"},
                {"request_id", "p1"},
                {"name", "chat"},
                {"arguments",
                 {{"prompt", "a slow answer in pieces [[chunks=12]][[chunk_ms=100]]"},
                  {"model", "glm-4.5"}}}});
  std::vector<std::pair<Clock::time_point, std::string>> notes;
  std::optional<json> result;
  while (!result) {
    const auto frame = c->recv_json(deadline_in(20s));
    REQUIRE(frame);
    if (is_partial(*frame, "p1")) {
      notes.emplace_back(Clock::now(), (*frame)["note"].get<std::string>());
    } else if (frame->value("op", "") == "call_tool_res") {
      result = *frame;
    }
  }
  const std::string content = exai::test::result_envelope(*result)["content"];
  REQUIRE(notes.size() >= 2);
  CHECK(notes.size() <= 7); // ~1.2 s of pieces every 100 ms, a note per 250 ms at most
  CHECK_THAT(notes.front().second, Catch::Contains("streaming from glm-4.5"));
  CHECK_THAT(notes.front().second, Catch::Contains("): echo"));
  for (std::size_t i = 1; i < notes.size(); ++i) {
    CHECK(notes[i].first - notes[i - 1].first > 150ms); // 250 ms apart when sent
  }
  CHECK(content.rfind("echo: a slow answer", 0) == 0);
  CHECK(d.back_to_zero());
}

TEST_CASE("a stream that stalls is aborted as a timeout and retried", "[e2e][serve][stream]")
{
  StreamDaemon d(ServeProcess::Env{{"EXAI_UPSTREAM_STALL_SECS", "0.3"}});
  auto c = d.client();
  const auto start = Clock::now();
  const json env =
      exai::test::result_envelope(chat(*c, "st1", "stall once [[fail_times=1]][[stall_ms=20000]]"));
  CHECK(env["metadata"]["attempts"] == 2);
  CHECK(Clock::now() - start < 10s);
  CHECK(d.fake.request_count() == 2);
  CHECK(d.back_to_zero());
}

TEST_CASE("cancel mid-stream frees the permits and the connection is not reused",
          "[e2e][serve][stream]")
{
  StreamDaemon d;
  auto c = d.client();
  c->send_json(
      {{"op", "call_tool"},
       {"request_id", "x1"},
       {"name", "chat"},
       {"arguments",
        {{"prompt", "a long answer [[chunks=100]][[chunk_ms=100]]"}, {"model", "glm-4.5"}}}});
  REQUIRE(c->recv_until([](const json& f) { return is_partial(f, "x1"); }, deadline_in(10s)));
  c->send_json({{"op", "cancel_tool"}, {"request_id", "x1"}});
  const auto res = c->recv_until(
      [](const json& f) {
        return f.value("op", "") == "call_tool_res" && f.value("request_id", "") == "x1";
      },
      deadline_in(5s));
  REQUIRE(res);
  CHECK((*res)["error"]["code"] == "CANCELLED");
  CHECK(d.back_to_zero());
  CHECK(d.fake.wait_for_open_connections_at_most(0, 5s)); // closed, not pooled

  chat(*c, "x2", "after the cancel");
  const auto requests = d.fake.requests();
  REQUIRE(requests.size() == 2);
  CHECK(requests[0].peer != requests[1].peer);
  const json health = exai::test::fetch_health(d.serve->port());
  CHECK(health["upstream_pools"]["glm"]["reused"] == 0);
  CHECK(health["upstream_pools"]["glm"]["opened"] == 2);
}

TEST_CASE("token usage and cost reach /metrics and /health", "[e2e][serve][stream]")
{
  StreamDaemon d(ServeProcess::Env{{"EXAI_PRICES", "glm-4.5:1000000:2000000"}});
  auto c = d.client();
  const json first = exai::test::result_envelope(chat(*c, "u1", "count me [[cached=2]]"));
  const json second = exai::test::result_envelope(chat(*c, "u2", "and me [[cached=2]]"));
  const auto prompt = first["metadata"]["tokens"]["prompt"].get<std::uint64_t>() +
                      second["metadata"]["tokens"]["prompt"].get<std::uint64_t>();
  const auto completion = first["metadata"]["tokens"]["completion"].get<std::uint64_t>() +
                          second["metadata"]["tokens"]["completion"].get<std::uint64_t>();
  REQUIRE(prompt > 0);

  const std::string metrics = http_request(d.serve->port(), "GET", "/metrics").body;
  const std::string labels = R"(provider="glm",model="glm-4.5")";
  CHECK_THAT(metrics,
             Catch::Contains("exai_tokens_total{" + labels + R"(,kind="prompt"} )" +
                             std::to_string(prompt) + "\n"));
  CHECK_THAT(metrics,
             Catch::Contains("exai_tokens_total{" + labels + R"(,kind="completion"} )" +
                             std::to_string(completion) + "\n"));
  CHECK_THAT(metrics, Catch::Contains("exai_tokens_total{" + labels + R"(,kind="cached"} 4)"));
  CHECK_THAT(metrics,
             Catch::Contains("exai_cost_total{" + labels + "} " +
                             std::to_string(prompt + 2 * completion) + "\n"));
  CHECK_THAT(metrics,
             Catch::Contains(R"(exai_upstream_first_token_seconds_count{provider="glm"} 2)"));
  CHECK_THAT(metrics, Catch::Contains(R"(exai_upstream_duration_seconds_count{provider="glm"} 2)"));

  const json usage = exai::test::fetch_health(d.serve->port())["usage"];
  CHECK(usage["calls"] == 2);
  CHECK(usage["tokens"]["prompt"] == prompt);
  CHECK(usage["tokens"]["completion"] == completion);
  CHECK(usage["tokens"]["cached"] == 4);
  CHECK(usage["cost"].get<double>() == Approx(static_cast<double>(prompt + 2 * completion)));
  REQUIRE(usage["by_model"].size() == 1);
  CHECK(usage["by_model"][0]["model"] == "glm-4.5");
}

TEST_CASE("model calls run on the event loops, on kept-alive connections, unless turned off",
          "[e2e][serve][stream]")
{
  StreamDaemon on_loops;
  StreamDaemon off(ServeProcess::Env{{"EXAI_UPSTREAM_ON_LOOPS", "false"}});
  for (auto* d : {&on_loops, &off}) {
    auto c = d->client();
    const json first = exai::test::result_envelope(chat(*c, "l1", "first [[chunks=3]]"));
    const json second = exai::test::result_envelope(chat(*c, "l2", "second [[chunks=3]]"));
    CHECK(first["content"] == "echo: first [[chunks=3]]");
    CHECK(second["metadata"]["streamed"] == true);
    CHECK(d->back_to_zero());
    const json health = exai::test::fetch_health(d->serve->port());
    // One connection to the daemon: both calls on one loop, one upstream connection.
    CHECK(health["upstream_pools"]["glm"]["opened"] == 1);
    CHECK(health["upstream_pools"]["glm"]["reused"] == 1);
    CHECK(health["loop_calls"] == (d == &on_loops ? 2 : 0));
  }
}

TEST_CASE("an event loop keeps as many upstream connections as the capacity scopes let run",
          "[e2e][serve][stream]")
{
  StreamDaemon d(ServeProcess::Env{{"EXAI_WS_GLM_MAX_INFLIGHT", "32"},
                                   {"EXAI_WS_GLOBAL_MAX_INFLIGHT", "64"},
                                   {"EXAI_WS_SESSION_MAX_INFLIGHT", "64"}});
  auto c = d.client(); // one connection: every call on one event loop
  constexpr int kWave = 24;
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < kWave; ++i) {
      const std::string id = "w" + std::to_string(round) + "-" + std::to_string(i);
      c->send_json(
          {{"op", "call_tool"},
           {"request_id", id},
           {"name", "chat"},
           {"arguments", {{"prompt", "wave [[sleep_ms=300]] " + id}, {"model", "glm-4.5"}}}});
    }
    int results = 0;
    while (results < kWave) {
      const auto res = c->recv_until(
          [](const json& f) { return f.value("op", "") == "call_tool_res"; }, deadline_in(10s));
      REQUIRE(res);
      CHECK(res->contains("outputs"));
      ++results;
    }
  }
  CHECK(d.back_to_zero());
  const json health = exai::test::fetch_health(d.serve->port());
  CHECK(health["loop_calls"] == 2 * kWave);
  // The first wave's 24 connections, all kept for the second.
  CHECK(health["upstream_pools"]["glm"]["opened"] == kWave);
  CHECK(health["upstream_pools"]["glm"]["reused"] == kWave);
}
