#include "net/upstream/connection_pool.hpp"
#include "net/upstream/upstream_client.hpp"
#include "tests/net/upstream/upstream_fixture.hpp"
#include "tests/support/fake_upstream.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

using namespace exai::core;
using namespace exai::net;
using namespace exai::test;
using namespace std::chrono_literals;

namespace {

// A clock tests move by hand.
struct ManualClock {
  std::shared_ptr<std::atomic<std::chrono::steady_clock::time_point>> now =
      std::make_shared<std::atomic<std::chrono::steady_clock::time_point>>(
          std::chrono::steady_clock::now());
  void advance(std::chrono::milliseconds by) { now->store(now->load() + by); }
};

// A GLM client on `fake` whose fast_options() `adjust` changes first.
UpstreamClient
client_on(const FakeUpstream& fake, const std::function<void(UpstreamOptions&)>& adjust)
{
  auto options = fast_options(RecordingSleeper{});
  adjust(options);
  return UpstreamClient({endpoint_for(fake)}, options);
}

// Three calls: the second `kept` after the first goes on its kept-alive
// connection; the third, `expired` after that, on a new one.
void
check_reused_then_closed(UpstreamClient& client,
                         ManualClock& clock,
                         std::chrono::milliseconds kept,
                         std::chrono::milliseconds expired)
{
  reply_of(client.complete("glm", request_with("one"), {}));
  clock.advance(kept);
  reply_of(client.complete("glm", request_with("two"), {}));
  CHECK(client.pool_stats("glm").reused == 1);
  clock.advance(expired);
  reply_of(client.complete("glm", request_with("three"), {}));
  CHECK(client.pool_stats("glm").reused == 1);
  CHECK(client.pool_stats("glm").opened == 2);
}

} // namespace

TEST_CASE_METHOD(GlmOnFake,
                 "sequential calls share one kept-alive connection",
                 "[net][upstream_pool]")
{
  for (const char* prompt : {"one", "two", "three"}) {
    CHECK(reply_of(client.complete("glm", request_with(prompt), {})).content ==
          std::string("echo: ") + prompt);
  }
  CHECK(fake.accepted_connections() == 1);
  std::set<std::string> peers;
  for (const auto& request : fake.requests()) {
    peers.insert(request.peer);
  }
  CHECK(peers.size() == 1);
  const auto stats = client.pool_stats("glm");
  CHECK(stats.opened == 1);
  CHECK(stats.reused == 2);
  CHECK(stats.idle == 1);
  CHECK(stats.leased == 0);
  CHECK(stats.max_idle == 4);
  CHECK(stats.stale_retries == 0);
}

TEST_CASE("an idle time of 0 opens a connection per call and asks the server to close it",
          "[net][upstream_pool]")
{
  FakeUpstream fake;
  auto client = client_on(fake, [](UpstreamOptions& o) { o.idle_timeout = 0ms; });
  reply_of(client.complete("glm", request_with("a"), {}));
  reply_of(client.complete("glm", request_with("b"), {}));
  CHECK(fake.accepted_connections() == 2);
  CHECK(fake.requests().at(0).headers.at("Connection") == "Close"); // Poco's spelling
  CHECK(client.pool_stats("glm").idle == 0);
  CHECK(client.pool_stats("glm").max_idle == 0);
}

TEST_CASE("a reused connection that dies before any answer byte is resent once on a fresh one",
          "[net][upstream_pool]")
{
  FakeUpstream fake;
  const RecordingSleeper delays;
  auto options = fast_options(delays);
  options.retry.max_attempts = 1;
  options.circuit.failure_threshold = 1; // one provider failure would open it
  UpstreamClient client({endpoint_for(fake)}, options);
  reply_of(client.complete("glm", request_with("warm up"), {}));
  // The server reads the request on the kept-alive connection and drops it
  // unanswered, exactly as when it closed the idle connection first.
  const auto reply =
      reply_of(client.complete("glm", request_with("x [[reset]][[fail_times=1]]"), {}));
  CHECK(reply.content == "echo: x [[reset]][[fail_times=1]]");
  CHECK(reply.attempts == 1);
  CHECK(delays.count() == 0); // no backoff
  CHECK(client.circuit_state("glm") == "closed");
  const auto stats = client.pool_stats("glm");
  CHECK(stats.stale_retries == 1);
  CHECK(stats.opened == 2);
  CHECK(fake.request_count() == 3);
}

TEST_CASE_METHOD(GlmOnFake,
                 "a fresh connection that dies before answering follows the retry policy",
                 "[net][upstream_pool]")
{
  const auto reply =
      reply_of(client.complete("glm", request_with("[[reset]][[fail_times=1]]"), {}));
  CHECK(reply.attempts == 2);
  CHECK(sleeper.count() == 1);
  CHECK(client.pool_stats("glm").stale_retries == 0);
}

TEST_CASE_METHOD(GlmOnFake,
                 "a reused connection that breaks after answer bytes follows the retry policy",
                 "[net][upstream_pool]")
{
  reply_of(client.complete("glm", request_with("warm up"), {}));
  const auto reply =
      reply_of(client.complete("glm", request_with("[[truncate]][[fail_times=1]]"), {}));
  CHECK(reply.attempts == 2);
  CHECK(sleeper.count() == 1);
  const auto stats = client.pool_stats("glm");
  CHECK(stats.stale_retries == 0);
  CHECK(stats.reused == 1);
  CHECK(stats.opened == 2); // the broken connection was not pooled again
}

TEST_CASE_METHOD(GlmOnFake,
                 "a connection the server closed while idle is never used again",
                 "[net][upstream_pool]")
{
  reply_of(client.complete("glm", request_with("bye [[close]]"), {}));
  REQUIRE(fake.wait_for_open_connections_at_most(0, 5s));
  reply_of(client.complete("glm", request_with("again"), {}));
  const auto stats = client.pool_stats("glm");
  CHECK(stats.opened == 2);
  CHECK(stats.reused == 0);
  CHECK(stats.stale_retries == 0);
  CHECK(fake.request_count() == 2);
}

TEST_CASE("idle connections are closed after the idle time", "[net][upstream_pool]")
{
  FakeUpstream fake;
  auto client = client_on(fake, [](UpstreamOptions& o) { o.idle_timeout = 200ms; });
  reply_of(client.complete("glm", request_with("hi"), {}));
  CHECK(fake.open_connections() == 1);
  CHECK(fake.wait_for_open_connections_at_most(0, 5s));
  CHECK(client.pool_stats("glm").idle == 0);
}

TEST_CASE("an idle connection is not used past the idle time", "[net][upstream_pool]")
{
  FakeUpstream fake;
  ManualClock clock;
  auto client = client_on(fake, [&](UpstreamOptions& o) {
    o.idle_timeout = 10s;
    o.pool_clock = [now = clock.now] { return now->load(); };
  });
  check_reused_then_closed(client, clock, 9s, 10s);
}

TEST_CASE("an idle connection is not used past the server's Keep-Alive hint",
          "[net][upstream_pool]")
{
  FakeUpstream::Options fake_options;
  fake_options.keep_alive_hint = 3; // seconds; used for at most 2 s (a 1 s margin)
  FakeUpstream fake(fake_options);
  ManualClock clock;
  auto client = client_on(fake, [&](UpstreamOptions& o) {
    o.idle_timeout = 60s;
    o.pool_clock = [now = clock.now] { return now->load(); };
  });
  check_reused_then_closed(client, clock, 1900ms, 2100ms);
}

TEST_CASE_METHOD(GlmOnFake,
                 "a cancelled call closes its connection instead of pooling it",
                 "[net][upstream_pool]")
{
  reply_of(client.complete("glm", request_with("warm up"), {}));
  std::stop_source stop;
  auto call = std::async(std::launch::async, [&] {
    return client.complete("glm", request_with("[[hang]]"), stop.get_token());
  });
  REQUIRE(fake.wait_for_concurrency(1, 5s));
  stop.request_stop();
  REQUIRE(call.wait_for(5s) == std::future_status::ready);
  CHECK(failure_of(call.get()).code == Errc::cancelled);
  const auto stats = client.pool_stats("glm");
  CHECK(stats.idle == 0);
  CHECK(stats.leased == 0);
  fake.release_hangs();
  reply_of(client.complete("glm", request_with("after"), {}));
  CHECK(client.pool_stats("glm").opened == 2);
}

TEST_CASE_METHOD(GlmOnFake,
                 "an answer cut off by the call's deadline is never pooled",
                 "[net][upstream_pool]")
{
  auto request = request_with("[[stall_ms=5000]]");
  request.deadline = std::chrono::steady_clock::now() + 300ms;
  CHECK(failure_of(client.complete("glm", request, {})).code == Errc::timeout);
  const auto stats = client.pool_stats("glm");
  CHECK(stats.idle == 0);
  CHECK(stats.leased == 0);
  reply_of(client.complete("glm", request_with("after"), {}));
  CHECK(client.pool_stats("glm").opened == 2);
  fake.stop(); // ends the stall
}

TEST_CASE("an answer not read to its end is never pooled", "[net][upstream_pool]")
{
  FakeUpstream fake;
  auto client = client_on(fake, [](UpstreamOptions& o) {
    o.max_response_bytes = 64;
    o.retry.max_attempts = 1;
  });
  failure_of(client.complete("glm", request_with("a reply longer than 64 bytes"), {}));
  CHECK(client.pool_stats("glm").idle == 0);
  CHECK(client.pool_stats("glm").leased == 0);
}

TEST_CASE("the pool keeps at most the provider's capacity of idle connections",
          "[net][upstream_pool]")
{
  FakeUpstream fake;
  const RecordingSleeper delays;
  UpstreamClient client({endpoint_for(fake, "glm", 2)}, fast_options(delays));
  std::vector<std::future<exai::core::ChatOutcome>> calls;
  for (int i = 0; i < 4; ++i) {
    calls.push_back(std::async(std::launch::async, [&client, i] {
      return client.complete("glm", request_with("n" + std::to_string(i) + " [[hang]]"), {});
    }));
  }
  REQUIRE(fake.wait_for_concurrency(4, 5s));
  fake.release_hangs();
  for (auto& call : calls) {
    reply_of(call.get());
  }
  const auto stats = client.pool_stats("glm");
  CHECK(stats.opened == 4);
  CHECK(stats.idle == 2);
  CHECK(fake.wait_for_open_connections_at_most(2, 5s));
}

TEST_CASE("the Keep-Alive header's timeout is read", "[net][upstream_pool]")
{
  using exai::net::keep_alive_timeout;
  CHECK(keep_alive_timeout("timeout=5, max=100") == std::chrono::seconds(5));
  CHECK(keep_alive_timeout("max=3, Timeout=12") == std::chrono::seconds(12));
  CHECK_FALSE(keep_alive_timeout(""));
  CHECK_FALSE(keep_alive_timeout("timeout=soon"));
  CHECK_FALSE(keep_alive_timeout("timeout=-1"));
}
