// The upstream client with streaming on: server-sent events from the fake
// upstream assembled into the reply the non-streamed answer gives, partial
// output, stalls, error events, cancellation and what happens to the
// connection afterwards.

#include "net/upstream/upstream_client.hpp"
#include "tests/net/upstream/upstream_fixture.hpp"
#include "tests/support/fake_upstream.hpp"

#include <catch2/catch.hpp>

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

UpstreamOptions
options(bool stream)
{
  UpstreamOptions o;
  o.stream = stream;
  o.retry.max_attempts = 3;
  o.retry.base_delay = 1ms;
  o.retry.max_delay = 2ms;
  o.retry.jitter = 0.0;
  o.circuit.failure_threshold = 100;
  o.seed = 1;
  return o;
}

void
check_same_answer(const ChatReply& streamed, const ChatReply& whole)
{
  CHECK(streamed.streamed);
  CHECK_FALSE(whole.streamed);
  CHECK(streamed.content == whole.content);
  CHECK(streamed.model == whole.model);
  CHECK(streamed.finish_reason == whole.finish_reason);
  CHECK(streamed.usage == whole.usage);
  CHECK(streamed.web_search == whole.web_search);
  REQUIRE(streamed.tool_calls.size() == whole.tool_calls.size());
  for (std::size_t i = 0; i < whole.tool_calls.size(); ++i) {
    // Ids differ per reply (the fake numbers them); the streamed one must arrive.
    CHECK_FALSE(streamed.tool_calls[i].id.empty());
    CHECK(streamed.tool_calls[i].type == whole.tool_calls[i].type);
    CHECK(streamed.tool_calls[i].name == whole.tool_calls[i].name);
    CHECK(streamed.tool_calls[i].arguments == whole.tool_calls[i].arguments);
  }
}

} // namespace

TEST_CASE("a streamed completion equals the non-streamed one (GLM and Kimi usage shapes)",
          "[net][upstream_stream]")
{
  FakeUpstream fake;
  UpstreamClient streaming({endpoint_for(fake), endpoint_for(fake, "kimi")}, options(true));
  UpstreamClient plain({endpoint_for(fake), endpoint_for(fake, "kimi")}, options(false));
  for (const std::string model : {"glm-4.5-flash", "kimi-k2-0905-preview"}) {
    INFO(model);
    const auto request = request_with("h\xc3\xa9llo stream [[cached=3]][[chunks=7]]", model);
    const auto provider = model.rfind("kimi", 0) == 0 ? "kimi" : "glm";
    const auto streamed = reply_of(streaming.complete(provider, request, {}));
    const auto whole = reply_of(plain.complete(provider, request, {}));
    check_same_answer(streamed, whole);
    CHECK(streamed.usage.value("total_tokens", 0) > 0);
    REQUIRE(streamed.time_to_first_token);
    CHECK(*streamed.time_to_first_token <= streamed.upstream_latency);
    CHECK_FALSE(whole.time_to_first_token);
  }
  const auto requests = fake.requests();
  REQUIRE(requests.size() == 4);
  CHECK(nlohmann::json::parse(requests[0].body)["stream"] == true);
  CHECK(requests[0].headers.at("Accept") == "text/event-stream");
  CHECK(nlohmann::json::parse(requests[1].body)["stream"] == false);
}

TEST_CASE("Kimi's streamed $web_search tool-call fragments merge into the same tool calls",
          "[net][upstream_stream]")
{
  FakeUpstream fake;
  UpstreamClient streaming({endpoint_for(fake, "kimi")}, options(true));
  UpstreamClient plain({endpoint_for(fake, "kimi")}, options(false));
  auto request = request_with("search this", "kimi-k2-0905-preview");
  request.tools = nlohmann::json::array(
      {{{"type", "builtin_function"}, {"function", {{"name", "$web_search"}}}}});
  const auto streamed = reply_of(streaming.complete("kimi", request, {}));
  const auto whole = reply_of(plain.complete("kimi", request, {}));
  REQUIRE(streamed.tool_calls.size() == 1);
  CHECK(streamed.tool_calls[0].name == "$web_search");
  CHECK(streamed.finish_reason == "tool_calls");
  check_same_answer(streamed, whole);
}

TEST_CASE("partial output reaches on_partial as it arrives", "[net][upstream_stream]")
{
  FakeUpstream fake;
  UpstreamClient client({endpoint_for(fake)}, options(true));
  auto request = request_with("one two three four five six [[chunks=6]][[chunk_ms=20]]");
  std::vector<std::string> partials;
  request.on_partial = [&](std::string_view content) { partials.emplace_back(content); };
  const auto reply = reply_of(client.complete("glm", request, {}));
  REQUIRE(partials.size() >= 3);
  for (std::size_t i = 1; i < partials.size(); ++i) {
    CHECK(partials[i].size() > partials[i - 1].size());
    CHECK(partials[i].rfind(partials[i - 1], 0) == 0); // each extends the one before
  }
  CHECK(partials.front().size() < reply.content.size());
  CHECK(partials.back() == reply.content);
}

TEST_CASE("a 1 MB single event streams through", "[net][upstream_stream]")
{
  FakeUpstream fake;
  UpstreamClient client({endpoint_for(fake)}, options(true));
  const auto reply =
      reply_of(client.complete("glm", request_with("big [[big_event=1048576]]"), {}));
  CHECK(reply.streamed);
  CHECK(reply.content.size() > (std::size_t{1} << 20U));
  CHECK(reply.content.find("zzzz") != std::string::npos);
}

TEST_CASE("a stream without [DONE] that finished is a reply", "[net][upstream_stream]")
{
  FakeUpstream fake;
  UpstreamClient client({endpoint_for(fake)}, options(true));
  const auto reply = reply_of(client.complete("glm", request_with("fine [[no_done]]"), {}));
  CHECK(reply.content == "echo: fine [[no_done]]");
  CHECK(reply.finish_reason == "stop");
}

TEST_CASE("an error event mid-stream is a provider error, retried; its connection is not reused",
          "[net][upstream_stream]")
{
  FakeUpstream fake;
  UpstreamClient client({endpoint_for(fake)}, options(true));
  const auto failure = failure_of(client.complete("glm", request_with("x [[sse_error]]"), {}));
  CHECK(failure.code == Errc::provider_error);
  CHECK_THAT(failure.message,
             Catch::Contains("error mid-stream") &&
                 Catch::Contains("fake upstream error mid-stream"));
  CHECK(failure.details["attempts"] == 3);
  CHECK(failure.details["upstream_code"] == "500");
  CHECK(fake.request_count() == 3);
  CHECK(client.pool_stats("glm").opened == 3); // each abandoned stream's connection was closed
  CHECK(client.pool_stats("glm").idle == 0);
}

TEST_CASE("a malformed stream is an unreadable reply, not retried", "[net][upstream_stream]")
{
  FakeUpstream fake;
  UpstreamClient client({endpoint_for(fake)}, options(true));
  const auto failure = failure_of(client.complete("glm", request_with("x [[malformed]]"), {}));
  CHECK(failure.code == Errc::provider_error);
  CHECK_THAT(failure.message, Catch::Contains("unreadable stream"));
  CHECK(fake.request_count() == 1);
}

TEST_CASE("a stream cut off midway is retried", "[net][upstream_stream]")
{
  FakeUpstream fake;
  UpstreamClient client({endpoint_for(fake)}, options(true));
  const auto reply =
      reply_of(client.complete("glm", request_with("x [[fail_times=1]][[truncate]]"), {}));
  CHECK(reply.attempts == 2);
}

TEST_CASE("a stream that stalls past the stall timeout is a timeout, retried",
          "[net][upstream_stream]")
{
  FakeUpstream fake;
  auto o = options(true);
  o.stall_timeout = 300ms;
  UpstreamClient client({endpoint_for(fake)}, o);
  const auto start = std::chrono::steady_clock::now();
  const auto reply =
      reply_of(client.complete("glm", request_with("x [[fail_times=1]][[stall_ms=10000]]"), {}));
  CHECK(reply.attempts == 2);
  CHECK(std::chrono::steady_clock::now() - start < 5s);

  const auto failure = failure_of(client.complete("glm", request_with("y [[stall_ms=10000]]"), {}));
  CHECK(failure.code == Errc::timeout);
  CHECK_THAT(failure.message, Catch::Contains("stalled") && Catch::Contains("300 ms"));
  CHECK(failure.details["attempts"] == 3);
}

TEST_CASE("cancel mid-stream returns at once and the connection is not reused",
          "[net][upstream_stream]")
{
  FakeUpstream fake;
  UpstreamClient client({endpoint_for(fake)}, options(true));
  std::stop_source stop;
  std::promise<void> first_piece;
  std::once_flag once;
  auto request = request_with("a long answer [[chunks=50]][[chunk_ms=100]]");
  request.on_partial = [&](std::string_view) {
    std::call_once(once, [&] { first_piece.set_value(); });
  };
  auto running = std::async(std::launch::async, [&] {
    auto outcome = client.complete("glm", request, stop.get_token());
    return std::make_pair(std::move(outcome), std::chrono::steady_clock::now());
  });
  REQUIRE(first_piece.get_future().wait_for(5s) == std::future_status::ready);
  const auto requested = std::chrono::steady_clock::now();
  stop.request_stop();
  REQUIRE(running.wait_for(5s) == std::future_status::ready);
  const auto [outcome, returned] = running.get();
  CHECK(returned - requested < 100ms);
  CHECK(failure_of(outcome).code == Errc::cancelled);
  CHECK(client.pool_stats("glm").idle == 0);
  CHECK(client.pool_stats("glm").leased == 0);

  const auto next = reply_of(client.complete("glm", request_with("next"), {}));
  CHECK(next.streamed);
  CHECK(client.pool_stats("glm").opened == 2);
  CHECK(client.pool_stats("glm").reused == 0);
}

TEST_CASE("a stream read to its end leaves the connection for the next call",
          "[net][upstream_stream]")
{
  FakeUpstream fake;
  UpstreamClient client({endpoint_for(fake)}, options(true));
  reply_of(client.complete("glm", request_with("first"), {}));
  reply_of(client.complete("glm", request_with("second"), {}));
  CHECK(client.pool_stats("glm").opened == 1);
  CHECK(client.pool_stats("glm").reused == 1);
  const auto requests = fake.requests();
  REQUIRE(requests.size() == 2);
  CHECK(requests[0].peer == requests[1].peer);
}
