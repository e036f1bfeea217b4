// UpstreamClient::start: the model call on a transfer loop, held to what
// complete() promises — the same request and reply, retries with backoff,
// the breaker, streaming, timeouts, cancellation — plus its own rules: it
// runs only on a loop's thread, and its outcome arrives there, later, once.

#include "net/upstream/transfer_loop.hpp"
#include "net/upstream/upstream_client.hpp"
#include "tests/net/upstream/upstream_fixture.hpp"
#include "tests/support/fake_upstream.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <future>
#include <mutex>
#include <string>
#include <vector>

using namespace exai::core;
using namespace exai::net;
using namespace exai::test;
using namespace std::chrono_literals;

namespace {

// Three attempts 50 ms then 100 ms apart (real waits: the loop's timers).
UpstreamOptions
loop_options(bool stream = false)
{
  auto o = fast_options(RecordingSleeper{}); // the sleeper: the blocking path's only
  o.stream = stream;
  o.retry.base_delay = 50ms;
  o.retry.max_delay = 100ms;
  return o;
}

} // namespace

TEST_CASE("a chat call on a transfer loop posts what complete() posts and reads the same reply",
          "[net][upstream_async]")
{
  FakeUpstream fake;
  UpstreamClient client({endpoint_for(fake)}, loop_options());
  CHECK_FALSE(client.starts_here());
  CHECK_FALSE(client.start("glm", request_with("off the loop"), {}, [](ChatOutcome) {}));

  LoopCaller caller(client);
  const auto on_loop = reply_of(caller.complete("glm", request_with("hello [[cached=2]]")));
  const auto blocking = reply_of(client.complete("glm", request_with("hello [[cached=2]]"), {}));
  CHECK(on_loop.content == "echo: hello [[cached=2]]");
  CHECK(on_loop.content == blocking.content);
  CHECK(on_loop.model == blocking.model);
  CHECK(on_loop.usage == blocking.usage);
  CHECK(on_loop.finish_reason == blocking.finish_reason);
  CHECK(on_loop.attempts == 1);
  CHECK_FALSE(on_loop.streamed);
  CHECK_FALSE(caller.misdelivered());

  const auto requests = fake.requests();
  REQUIRE(requests.size() == 2);
  CHECK(requests[0].path == requests[1].path);
  CHECK(nlohmann::json::parse(requests[0].body) == nlohmann::json::parse(requests[1].body));
  CHECK(requests[0].headers.at("Authorization") == std::string("Bearer ") + kUpstreamKey);
  CHECK(requests[0].headers.at("Accept") == "application/json");
  CHECK(requests[0].headers.count("Expect") == 0);
}

TEST_CASE("5xx answers are retried on the loop's timers, with the backoff waited",
          "[net][upstream_async]")
{
  FakeUpstream fake;
  UpstreamClient client({endpoint_for(fake)}, loop_options());
  LoopCaller caller(client);
  SECTION("transient failures then success")
  {
    const auto start = std::chrono::steady_clock::now();
    const auto reply = reply_of(caller.complete("glm", request_with("x [[fail_times=2]]")));
    CHECK(std::chrono::steady_clock::now() - start >= 150ms); // 50 + 100 ms of backoff
    CHECK(reply.attempts == 3);
    CHECK(fake.request_count() == 3);
  }
  SECTION("persistent failure gives provider_error with the status and body")
  {
    const auto failure = failure_of(caller.complete("glm", request_with("x [[status=502]]")));
    CHECK(failure.code == Errc::provider_error);
    CHECK(failure.details["status"] == 502);
    CHECK(failure.details["attempts"] == 3);
    CHECK_THAT(failure.details["body"].get<std::string>(),
               Catch::Contains("fake upstream status 502"));
    CHECK_THAT(failure.message, Catch::Contains("after 3 attempts"));
    CHECK(fake.request_count() == 3);
  }
  SECTION("4xx answers are not retried")
  {
    const auto failure = failure_of(caller.complete("glm", request_with("x [[status=400]]")));
    CHECK(failure.code == Errc::provider_error);
    CHECK(failure.details["status"] == 400);
    CHECK(fake.request_count() == 1);
  }
  CHECK_FALSE(caller.misdelivered());
}

TEST_CASE("an unreachable or unknown provider fails on the loop as provider_unavailable",
          "[net][upstream_async]")
{
  UpstreamEndpoint endpoint;
  endpoint.id = "kimi";
  endpoint.display_name = "KIMI";
  endpoint.base_url = "http://127.0.0.1:" + std::to_string(closed_port()) + "/v1";
  endpoint.api_key = kUpstreamKey;
  UpstreamClient client({endpoint}, loop_options());
  LoopCaller caller(client);
  const auto failure = failure_of(caller.complete("kimi", request_with("hi")));
  CHECK(failure.code == Errc::provider_unavailable);
  CHECK_THAT(failure.message, Catch::Contains("unreachable"));
  CHECK(failure.details["attempts"] == 3);
  CHECK(failure_of(caller.complete("nope", request_with("hi"))).code == Errc::provider_unavailable);
  CHECK_FALSE(caller.misdelivered()); // the refusal, known at once, still came later
}

TEST_CASE("an open circuit fails fast on the loop, sending nothing", "[net][upstream_async]")
{
  FakeUpstream fake;
  auto options = loop_options();
  options.retry.max_attempts = 1;
  options.circuit.failure_threshold = 2;
  UpstreamClient client({endpoint_for(fake)}, options);
  LoopCaller caller(client);
  failure_of(caller.complete("glm", request_with("x [[status=500]]")));
  failure_of(caller.complete("glm", request_with("x [[status=500]]")));
  CHECK(client.circuit_state("glm") == "open");
  const auto refused = failure_of(caller.complete("glm", request_with("x")));
  CHECK(refused.code == Errc::provider_unavailable);
  CHECK_THAT(refused.message, Catch::Contains("circuit open"));
  CHECK(fake.request_count() == 2);
  CHECK_FALSE(caller.misdelivered());
}

TEST_CASE("a reply slower than the read timeout is a timeout on the loop", "[net][upstream_async]")
{
  FakeUpstream fake;
  auto endpoint = endpoint_for(fake);
  endpoint.read_timeout = 200ms;
  UpstreamClient client({endpoint}, loop_options());
  LoopCaller caller(client);
  const auto start = std::chrono::steady_clock::now();
  const auto failure = failure_of(caller.complete("glm", request_with("[[sleep_ms=3000]]")));
  CHECK(failure.code == Errc::timeout);
  CHECK_THAT(failure.message, Catch::Contains("200 ms"));
  CHECK(std::chrono::steady_clock::now() - start < 2500ms);
  CHECK(fake.request_count() == 1);
}

TEST_CASE("the call's deadline bounds the attempts and backoff on the loop",
          "[net][upstream_async]")
{
  FakeUpstream fake;
  auto options = loop_options();
  options.retry.base_delay = 400ms;
  options.retry.max_delay = 400ms;
  UpstreamClient client({endpoint_for(fake)}, options);
  LoopCaller caller(client);
  auto request = request_with("x [[status=503]]");
  request.deadline = std::chrono::steady_clock::now() + 200ms;
  const auto failure = failure_of(caller.complete("glm", std::move(request)));
  // The backoff would pass the deadline: the first answer is the last.
  CHECK(failure.details["status"] == 503);
  CHECK(fake.request_count() == 1);

  auto late = request_with("never sent");
  late.deadline = std::chrono::steady_clock::now() - 1ms;
  const auto timed_out = failure_of(caller.complete("glm", std::move(late)));
  CHECK(timed_out.code == Errc::timeout);
  CHECK(fake.request_count() == 1);
  CHECK_FALSE(caller.misdelivered());
}

TEST_CASE("a stop request ends a call on the loop within 100 ms, in flight or in backoff",
          "[net][upstream_async]")
{
  FakeUpstream fake;
  UpstreamClient client({endpoint_for(fake)}, loop_options());
  LoopCaller caller(client);
  SECTION("in flight")
  {
    std::stop_source stop;
    auto outcome = caller.start("glm", request_with("[[hang]]"), stop.get_token());
    REQUIRE(fake.wait_for_concurrency(1, 5s));
    const auto requested = std::chrono::steady_clock::now();
    stop.request_stop();
    REQUIRE(outcome.wait_for(5s) == std::future_status::ready);
    const auto latency = std::chrono::steady_clock::now() - requested;
    CHECK(latency < 100ms);
    CHECK(failure_of(outcome.get()).code == Errc::cancelled);
    CHECK(client.circuit_state("glm") == "closed");
    CHECK(client.pool_stats("glm").leased == 0);
    fake.release_hangs();
  }
  SECTION("waiting out a backoff")
  {
    std::stop_source stop;
    // Within the 30 s retry budget, so the 503 is retried after 20 s.
    auto outcome =
        caller.start("glm", request_with("[[status=503]][[retry_after=20]]"), stop.get_token());
    REQUIRE(fake.wait_for_requests(1, 5s));
    const auto requested = std::chrono::steady_clock::now();
    stop.request_stop();
    REQUIRE(outcome.wait_for(5s) == std::future_status::ready);
    CHECK(std::chrono::steady_clock::now() - requested < 100ms);
    CHECK(failure_of(outcome.get()).code == Errc::cancelled);
    CHECK(fake.request_count() == 1);
  }
  SECTION("stopped before it began: nothing is sent")
  {
    std::stop_source stop;
    stop.request_stop();
    CHECK(failure_of(caller.complete("glm", request_with("hi"), stop.get_token())).code ==
          Errc::cancelled);
    CHECK(fake.request_count() == 0);
  }
  CHECK_FALSE(caller.misdelivered());
}

TEST_CASE("a call still running when its loop is destroyed ends cancelled", "[net][upstream_async]")
{
  FakeUpstream fake;
  UpstreamClient client({endpoint_for(fake)}, loop_options());
  std::future<ChatOutcome> outcome;
  {
    LoopCaller caller(client);
    outcome = caller.start("glm", request_with("[[hang]]"));
    REQUIRE(fake.wait_for_concurrency(1, 5s));
  }
  REQUIRE(outcome.wait_for(0s) == std::future_status::ready);
  CHECK(failure_of(outcome.get()).code == Errc::cancelled);
  CHECK(client.circuit_state("glm") == "closed");
  fake.release_hangs();
}

TEST_CASE("a streamed call on the loop equals the non-streamed one and reports partial output",
          "[net][upstream_async][upstream_stream]")
{
  FakeUpstream fake;
  UpstreamClient streaming({endpoint_for(fake)}, loop_options(true));
  UpstreamClient plain({endpoint_for(fake)}, loop_options(false));
  LoopCaller streamed_caller(streaming);
  LoopCaller plain_caller(plain);
  auto request = request_with("one two three four five six [[chunks=6]][[chunk_ms=20]]");
  std::vector<std::string> partials;
  std::thread::id partial_thread;
  request.on_partial = [&](std::string_view content) {
    partials.emplace_back(content);
    partial_thread = std::this_thread::get_id();
  };
  const auto streamed = reply_of(streamed_caller.complete("glm", request));
  const auto whole =
      reply_of(plain_caller.complete("glm", request_with(request.messages[1].content)));
  CHECK(streamed.streamed);
  CHECK(streamed.content == whole.content);
  CHECK(streamed.usage == whole.usage);
  CHECK(streamed.finish_reason == whole.finish_reason);
  REQUIRE(streamed.time_to_first_token);
  CHECK(*streamed.time_to_first_token <= streamed.upstream_latency);
  REQUIRE(partials.size() >= 3);
  for (std::size_t i = 1; i < partials.size(); ++i) {
    CHECK(partials[i].rfind(partials[i - 1], 0) == 0); // each extends the one before
  }
  CHECK(partials.back() == streamed.content);
  std::promise<std::thread::id> loop_thread;
  streamed_caller.loop().defer([&] { loop_thread.set_value(std::this_thread::get_id()); });
  CHECK(partial_thread == loop_thread.get_future().get());
  const auto requests = fake.requests();
  REQUIRE(requests.size() == 2);
  CHECK(requests[0].headers.at("Accept") == "text/event-stream");
  CHECK(nlohmann::json::parse(requests[0].body)["stream"] == true);
}

TEST_CASE("streams on the loop: a 1 MB event, no [DONE], and a plain answer to a streamed request",
          "[net][upstream_async][upstream_stream]")
{
  FakeUpstream fake;
  UpstreamClient client({endpoint_for(fake)}, loop_options(true));
  LoopCaller caller(client);
  const auto big = reply_of(caller.complete("glm", request_with("big [[big_event=1048576]]")));
  CHECK(big.streamed);
  CHECK(big.content.size() > (std::size_t{1} << 20U));
  const auto undone = reply_of(caller.complete("glm", request_with("fine [[no_done]]")));
  CHECK(undone.content == "echo: fine [[no_done]]");
  CHECK(undone.finish_reason == "stop");
}

TEST_CASE("broken streams on the loop: an error event is retried, malformed is not, a cut is",
          "[net][upstream_async][upstream_stream]")
{
  FakeUpstream fake;
  UpstreamClient client({endpoint_for(fake)}, loop_options(true));
  LoopCaller caller(client);
  SECTION("an error event mid-stream")
  {
    const auto failure = failure_of(caller.complete("glm", request_with("x [[sse_error]]")));
    CHECK(failure.code == Errc::provider_error);
    CHECK_THAT(failure.message, Catch::Contains("fake upstream error mid-stream"));
    CHECK(failure.details["attempts"] == 3);
    CHECK(failure.details["upstream_code"] == "500");
    CHECK(fake.request_count() == 3);
    CHECK(client.pool_stats("glm").opened == 3); // an abandoned stream's connection is closed
    CHECK(client.pool_stats("glm").idle == 0);
  }
  SECTION("a malformed event")
  {
    const auto failure = failure_of(caller.complete("glm", request_with("x [[malformed]]")));
    CHECK_THAT(failure.message, Catch::Contains("unreadable stream"));
    CHECK(fake.request_count() == 1);
  }
  SECTION("a stream cut off midway")
  {
    const auto reply =
        reply_of(caller.complete("glm", request_with("x [[fail_times=1]][[truncate]]")));
    CHECK(reply.attempts == 2);
  }
}

TEST_CASE("a stream on the loop that stalls past the stall timeout is a timeout, retried",
          "[net][upstream_async][upstream_stream]")
{
  FakeUpstream fake;
  auto options = loop_options(true);
  options.stall_timeout = 300ms;
  UpstreamClient client({endpoint_for(fake)}, options);
  LoopCaller caller(client);
  const auto reply =
      reply_of(caller.complete("glm", request_with("x [[fail_times=1]][[stall_ms=10000]]")));
  CHECK(reply.attempts == 2);
  const auto failure = failure_of(caller.complete("glm", request_with("y [[stall_ms=10000]]")));
  CHECK(failure.code == Errc::timeout);
  CHECK_THAT(failure.message, Catch::Contains("stalled") && Catch::Contains("300 ms"));
  CHECK(failure.details["attempts"] == 3);
}

TEST_CASE("cancel mid-stream on the loop ends at once; a finished stream's connection is reused",
          "[net][upstream_async][upstream_stream]")
{
  FakeUpstream fake;
  UpstreamClient client({endpoint_for(fake)}, loop_options(true));
  LoopCaller caller(client);
  reply_of(caller.complete("glm", request_with("first")));
  reply_of(caller.complete("glm", request_with("second")));
  CHECK(client.pool_stats("glm").opened == 1);
  CHECK(client.pool_stats("glm").reused == 1);

  std::stop_source stop;
  std::promise<void> first_piece;
  std::once_flag once;
  auto request = request_with("a long answer [[chunks=50]][[chunk_ms=100]]");
  request.on_partial = [&](std::string_view) {
    std::call_once(once, [&] { first_piece.set_value(); });
  };
  auto outcome = caller.start("glm", std::move(request), stop.get_token());
  REQUIRE(first_piece.get_future().wait_for(5s) == std::future_status::ready);
  const auto requested = std::chrono::steady_clock::now();
  stop.request_stop();
  REQUIRE(outcome.wait_for(5s) == std::future_status::ready);
  CHECK(std::chrono::steady_clock::now() - requested < 100ms);
  CHECK(failure_of(outcome.get()).code == Errc::cancelled);
  CHECK(client.pool_stats("glm").leased == 0);
  CHECK(client.pool_stats("glm").idle == 0); // the cancelled stream's connection was closed
  reply_of(caller.complete("glm", request_with("next")));
  CHECK(client.pool_stats("glm").opened == 2);
}

TEST_CASE("the API key never appears in a failure from the loop", "[net][upstream_async]")
{
  FakeUpstream fake;
  UpstreamClient client({endpoint_for(fake)}, loop_options());
  LoopCaller caller(client);
  std::string messages;
  for (const std::string prompt : {"[[status=400]][[echo_auth]]", "[[status=503]][[echo_auth]]"}) {
    const auto failure = failure_of(caller.complete("glm", request_with(prompt)));
    messages += failure.message + failure.details.dump();
  }
  CHECK(messages.find("you sent Bearer <redacted") != std::string::npos); // the echo was scrubbed
  CHECK(messages.find(kUpstreamKey) == std::string::npos);
}
