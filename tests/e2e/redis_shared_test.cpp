// Several `exai serve` processes sharing capacity through one Redis
// (EXAI_REDIS_URL, SPEC §9): a private redis-server on a loopback port, one
// fake GLM upstream both daemons call.
#include "tests/support/daemon_checks.hpp"
#include "tests/support/eventually.hpp"
#include "tests/support/exai_run.hpp"
#include "tests/support/fake_upstream.hpp"
#include "tests/support/redis_server.hpp"
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

const std::string kGlmScope = "exai:cap:provider:glm";
const std::string kGlobalScope = "exai:cap:global";

std::unique_ptr<ServeProcess>
start_daemon(const FakeUpstream& glm, const RedisServer& redis, ServeProcess::Env extra = {})
{
  ServeProcess::Env env = {{"GLM_API_KEY", kGlmTestKey},
                           {"GLM_API_URL", glm.base_url()},
                           {"EXAI_REDIS_URL", redis.url()},
                           {"EXAI_WS_GLM_MAX_INFLIGHT", "2"},
                           {"EXAI_WS_ACQUIRE_TIMEOUT_SECS", "30"},
                           {"EXAI_WS_PROGRESS_INTERVAL_SECS", "0.1"}};
  for (auto& [k, v] : extra) {
    env[k] = v;
  }
  return ServeProcess::start_ready(env);
}

std::unique_ptr<WsClient>
client_of(const ServeProcess& serve)
{
  auto c = std::make_unique<WsClient>(serve.port());
  const auto ack = c->hello();
  REQUIRE(ack);
  REQUIRE(ack->at("ok") == true);
  return c;
}

void
send_chat(WsClient& c, const std::string& id, const std::string& prompt)
{
  c.send_json({{"op", "call_tool"},
               {"request_id", id},
               {"name", "chat"},
               {"arguments", {{"prompt", prompt}}}});
}

std::optional<json>
result_of(WsClient& c, std::chrono::milliseconds limit = 30s)
{
  return c.recv_until([](const json& f) { return f.value("op", "") == "call_tool_res"; },
                      deadline_in(limit));
}

// Nothing held anywhere: each daemon's scopes back to zero, and no lease left
// in Redis.
void
check_nothing_held(const RedisServer& redis, std::initializer_list<const ServeProcess*> daemons)
{
  for (const auto* daemon : daemons) {
    CHECK(capacity_back_to_zero(daemon->port()));
  }
  CHECK(eventually([&] { return redis.zcard(kGlmScope) == 0 && redis.zcard(kGlobalScope) == 0; },
                   5000ms));
}

} // namespace

TEST_CASE("two daemons share one GLM limit: the upstream never sees more than it allows",
          "[e2e][redis]")
{
  RedisServer redis;
  FakeUpstream glm;
  auto a = start_daemon(glm, redis);
  auto b = start_daemon(glm, redis);
  std::vector<std::unique_ptr<WsClient>> clients;
  constexpr int kPerDaemon = 6;
  for (int i = 0; i < 2 * kPerDaemon; ++i) {
    clients.push_back(client_of(i % 2 == 0 ? *a : *b));
    send_chat(*clients.back(),
              "s" + std::to_string(i),
              "shared " + std::to_string(i) + " [[sleep_ms=150]]");
  }
  for (auto& c : clients) {
    const auto res = result_of(*c);
    REQUIRE(res);
    CHECK(res->contains("outputs"));
  }
  CHECK(glm.peak_concurrency() == 2);
  CHECK(glm.request_count() == 2 * kPerDaemon);
  const json health = fetch_health(a->port());
  CHECK(health.at("capacity_mode") == "shared");
  CHECK(health.at("redis").at("round_trips_per_call").get<double>() >= 4.0);
  // Every result was written (none dropped for a full write queue).
  CHECK(health.at("redis").at("writes_dropped") == 0);
  CHECK(health.at("redis").at("write_queue_bytes").is_number_unsigned());
  check_nothing_held(redis, {a.get(), b.get()});
}

TEST_CASE("a daemon killed with SIGKILL strands its leases only for the lease TTL", "[e2e][redis]")
{
  RedisServer redis;
  FakeUpstream glm;
  const ServeProcess::Env ttl = {{"EXAI_REDIS_LEASE_TTL_SECS", "1.5"}};
  auto a = start_daemon(glm, redis, ttl);
  auto b = start_daemon(glm, redis, ttl);
  auto c1 = client_of(*a);
  auto c2 = client_of(*a);
  send_chat(*c1, "h1", "hang one [[hang]]");
  send_chat(*c2, "h2", "hang two [[hang]]");
  REQUIRE(glm.wait_for_concurrency(2, 10s));
  REQUIRE(redis.zcard(kGlmScope) == 2);
  auto waiter = client_of(*b);
  send_chat(*waiter, "w1", "waits for a lease");
  // B's call waits: both leases are A's.
  REQUIRE(eventually([&] { return fetch_health(b->port()).at("queued") == 1; }, 5000ms));
  const auto killed = std::chrono::steady_clock::now();
  REQUIRE(a->stop(SIGKILL, 5s) == 128 + SIGKILL);
  const auto res = result_of(*waiter, 20s);
  REQUIRE(res);
  CHECK(res->contains("outputs"));
  // Leases expire 1.5 s after their last renewal (at most 0.5 s before the kill).
  CHECK(std::chrono::steady_clock::now() - killed < 6s);
  glm.release_hangs();
  check_nothing_held(redis, {b.get()});
}

TEST_CASE("Redis stopped mid-run: calls still answered, health degraded, then shared again",
          "[e2e][redis]")
{
  RedisServer redis;
  FakeUpstream glm;
  auto a = start_daemon(glm, redis, {{"EXAI_REDIS_TIMEOUT_SECS", "0.3"}});
  auto c = client_of(*a);
  int n = 0;
  const auto call_ok = [&] {
    const std::string id = std::to_string(++n);
    send_chat(*c, "r" + id, "call " + id);
    const auto res = result_of(*c);
    return res && res->contains("outputs");
  };
  CHECK(call_ok());
  CHECK(fetch_health(a->port()).at("capacity_mode") == "shared");
  redis.stop();
  CHECK(call_ok());
  CHECK(call_ok());
  json health = fetch_health(a->port());
  CHECK(health.at("capacity_mode") == "degraded");
  CHECK(health.at("healthy") == false);
  CHECK(health.at("redis").at("fallbacks") == 1);
  CHECK_THAT(health.at("degraded_reasons").dump(), Catch::Contains("shared capacity degraded"));
  redis.start();
  CHECK(
      eventually([&] { return fetch_health(a->port()).at("capacity_mode") == "shared"; }, 10000ms));
  CHECK(call_ok());
  health = fetch_health(a->port());
  CHECK(health.at("healthy") == true);
  check_nothing_held(redis, {a.get()});
  CHECK(a->stderr_text().find("shared capacity degraded") != std::string::npos);
}

TEST_CASE("a bad EXAI_REDIS_URL or refused credentials stop start-up with 78", "[e2e][redis]")
{
  FakeUpstream glm;
  {
    ServeProcess serve(ServeProcess::Env{{"GLM_API_KEY", kGlmTestKey},
                                         {"GLM_API_URL", glm.base_url()},
                                         {"EXAI_REDIS_URL", "http://127.0.0.1:1"}});
    CHECK(serve.wait_exit() == 78);
    CHECK_THAT(serve.stderr_text(), Catch::Contains("EXAI_REDIS_URL"));
  }
  RedisServer redis({"--requirepass", "the-right-one"});
  ServeProcess serve(ServeProcess::Env{
      {"GLM_API_KEY", kGlmTestKey},
      {"GLM_API_URL", glm.base_url()},
      {"EXAI_REDIS_URL", "redis://:not-the-password@127.0.0.1:" + std::to_string(redis.port())}});
  CHECK(serve.wait_exit() == 78);
  CHECK_THAT(serve.stderr_text(), Catch::Contains("refused the credentials"));
  CHECK_THAT(serve.stderr_text(), !Catch::Contains("not-the-password"));
}

TEST_CASE("a conversation started on one daemon continues on another", "[e2e][redis]")
{
  RedisServer redis;
  FakeUpstream glm;
  auto a = start_daemon(glm, redis);
  auto b = start_daemon(glm, redis);
  auto on_a = client_of(*a);
  send_chat(*on_a, "t1", "turn one on A");
  const auto first = result_of(*on_a);
  REQUIRE(first);
  const std::string thread = result_envelope(*first)["continuation_offer"]["continuation_id"];
  auto on_b = client_of(*b);
  on_b->send_json({{"op", "call_tool"},
                   {"request_id", "t2"},
                   {"name", "chat"},
                   {"arguments", {{"prompt", "turn two on B"}, {"continuation_id", thread}}}});
  const auto second = result_of(*on_b);
  REQUIRE(second);
  REQUIRE(second->contains("outputs"));
  const auto requests = glm.requests();
  REQUIRE(requests.size() == 2);
  // B sent A's first turn as history.
  CHECK(requests.back().body.find("turn one on A") != std::string::npos);
}

TEST_CASE("a result is replayed by request id after its daemon restarts", "[e2e][redis]")
{
  RedisServer redis;
  FakeUpstream glm;
  const std::string token = "redis-e2e-token-0123456789";
  const ServeProcess::Env with_token = {{"EXAI_WS_TOKEN", token}};
  auto a = start_daemon(glm, redis, with_token);
  json first;
  {
    WsClient c(a->port());
    REQUIRE(c.hello(token));
    send_chat(c, "keep-me", "answer once");
    const auto res = result_of(c);
    REQUIRE(res);
    REQUIRE(res->contains("outputs"));
    first = *res;
  }
  REQUIRE(a->stop(SIGTERM) == 0);
  a = start_daemon(glm, redis, with_token);
  WsClient c(a->port());
  REQUIRE(c.hello(token));
  send_chat(c, "keep-me", "answer once");
  const auto again = result_of(c);
  REQUIRE(again);
  CHECK(again->at("outputs") == first.at("outputs"));
  CHECK(glm.request_count() == 1); // replayed, not asked again
}

TEST_CASE("exai stress --targets loads two daemons at once and the shared limit holds",
          "[e2e][redis][stress]")
{
  RedisServer redis;
  FakeUpstream::Options slow;
  slow.behavior.latency = std::chrono::milliseconds(20); // calls overlap
  FakeUpstream glm(slow);
  auto a = start_daemon(glm, redis);
  auto b = start_daemon(glm, redis);
  const std::string targets = "ws://127.0.0.1:" + std::to_string(a->port()) +
                              "/,ws://127.0.0.1:" + std::to_string(b->port()) + "/";
  const auto run = run_exai(EXAI_BINARY,
                            {},
                            "--log-level warn stress --json --targets " + targets +
                                " --connections 8 --calls 60 --mix normal=1 --tool chat"
                                " --rss-tolerance 4GB");
  CAPTURE(run.out, run.err);
  const json report = json::parse(run.out, nullptr, false);
  REQUIRE_FALSE(report.is_discarded());
  CHECK(run.exit_code == 0);
  CHECK(report.at("passed") == true);
  CHECK(report.at("calls") == 60);
  REQUIRE(report.at("targets").size() == 2);
  for (const auto& target : report.at("targets")) {
    CHECK(target.at("outcomes").value("ok", 0) == 30); // split evenly, every call answered
    CHECK(target.at("passed") == true);
  }
  // Both daemons got load, and together they never exceeded GLM's shared 2.
  CHECK(glm.request_count() == 60);
  CHECK(glm.peak_concurrency() == 2);
  check_nothing_held(redis, {a.get(), b.get()});
}

TEST_CASE("Redis down with EXAI_REDIS_FAILURE=refuse: calls are refused at once, then served again",
          "[e2e][redis]")
{
  RedisServer redis;
  FakeUpstream glm;
  auto a = start_daemon(
      glm, redis, {{"EXAI_REDIS_FAILURE", "refuse"}, {"EXAI_REDIS_TIMEOUT_SECS", "0.3"}});
  auto c = client_of(*a);
  send_chat(*c, "before", "while Redis runs");
  auto res = result_of(*c);
  REQUIRE(res);
  CHECK(res->contains("outputs"));
  redis.stop();
  // The acquire timeout is 30 s: a refusal within a few seconds is the policy, not a deadline.
  const auto asked = std::chrono::steady_clock::now();
  send_chat(*c, "down", "while Redis is down");
  res = result_of(*c);
  REQUIRE(res);
  CAPTURE(res->dump());
  CHECK(std::chrono::steady_clock::now() - asked < 10s);
  REQUIRE(res->contains("error"));
  CHECK(res->at("error").at("code") == "OVER_CAPACITY");
  CHECK(res->at("error").at("details").at("reason") == "shared_store_unreachable");
  CHECK_THAT(res->at("error").at("message").get<std::string>(),
             Catch::Contains("EXAI_REDIS_FAILURE=refuse"));
  CHECK(glm.request_count() == 1);
  redis.start();
  CHECK(
      eventually([&] { return fetch_health(a->port()).at("capacity_mode") == "shared"; }, 10000ms));
  send_chat(*c, "after", "Redis is back");
  res = result_of(*c);
  REQUIRE(res);
  CHECK(res->contains("outputs"));
  CHECK(capacity_back_to_zero(a->port()));
}

TEST_CASE("a paused Redis delays only the calls that need it, never other clients' frames",
          "[e2e][redis]")
{
  // Each Redis answer may take longer than the pause below.
  const ServeProcess::Env patient = {{"EXAI_REDIS_TIMEOUT_SECS", "10"}};
  RedisServer redis;
  FakeUpstream glm;
  auto a = start_daemon(glm, redis, patient);
  auto waiting = client_of(*a);
  Poco::Redis::Array pause;
  pause << "CLIENT"
        << "PAUSE"
        << "3000"
        << "ALL";
  (void)redis.command(pause);
  const auto paused = std::chrono::steady_clock::now();
  send_chat(*waiting, "slow", "needs Redis");
  // Another client connects and is answered while that call waits on Redis.
  auto other = client_of(*a);
  other->send_json({{"op", "list_tools"}, {"request_id", "lt"}});
  const auto tools = other->recv_until(
      [](const json& f) { return f.value("op", "") == "list_tools_res"; }, deadline_in(5s));
  REQUIRE(tools);
  CHECK(std::chrono::steady_clock::now() - paused < 2s);
  const auto res = result_of(*waiting);
  REQUIRE(res);
  CHECK(res->contains("outputs"));
  CHECK(capacity_back_to_zero(a->port()));
}

TEST_CASE("an idle daemon takes a call's leases on the call's own thread, its lookup included",
          "[e2e][redis]")
{
  RedisServer redis;
  FakeUpstream glm;
  const std::string token = "redis-e2e-token-0123456789";
  auto a = start_daemon(glm, redis, {{"EXAI_WS_TOKEN", token}});
  auto b = start_daemon(glm, redis, {{"EXAI_WS_TOKEN", token}});
  constexpr int kStored = 10;
  std::vector<json> stored;
  {
    WsClient on_a(a->port());
    REQUIRE(on_a.hello(token));
    for (int i = 0; i < kStored; ++i) {
      send_chat(on_a, "keep-" + std::to_string(i), "answer once " + std::to_string(i));
      const auto res = result_of(on_a);
      REQUIRE(res);
      REQUIRE(res->contains("outputs"));
      stored.push_back(*res);
    }
  }
  WsClient c(b->port());
  REQUIRE(c.hello(token));
  const auto prefetched = [&] {
    return fetch_health(b->port(), token).at("redis").at("leases_prefetched").get<int>();
  };
  // Sequential calls: once a call thread is idle, the next call's global and
  // provider leases are taken there (the first call finds none idle).
  for (int i = 0; i < 20 && prefetched() < 2; ++i) {
    send_chat(c, "warm-" + std::to_string(i), "warm up " + std::to_string(i));
    REQUIRE(result_of(c));
  }
  REQUIRE(prefetched() >= 2);
  const auto asked = glm.request_count();
  // Request ids answered on A are replayed on B from Redis, by the lookup that
  // rides on that round trip: the model is not asked again.
  const int before = prefetched();
  for (int i = 0; i < kStored && prefetched() == before; ++i) {
    send_chat(c, "keep-" + std::to_string(i), "answer once " + std::to_string(i));
    const auto again = result_of(c);
    REQUIRE(again);
    CHECK(again->at("outputs") == stored.at(i).at("outputs"));
  }
  CHECK(prefetched() > before);
  CHECK(glm.request_count() == asked);
  // Neither the lookups nor the results and conversation turns written took a
  // round trip of their own: they rode on the leases' scripts.
  CHECK(fetch_health(b->port(), token).at("redis").at("store_round_trips") == 0);
  CHECK(eventually([&] { return redis.zcard(kGlmScope) == 0 && redis.zcard(kGlobalScope) == 0; },
                   5000ms));
}
