#include "net/upstream/upstream_client.hpp"
#include "tests/net/upstream/upstream_fixture.hpp"
#include "tests/support/fake_upstream.hpp"

#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <catch2/catch.hpp>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

using namespace exai::core;
using namespace exai::net;
using namespace exai::test;
using namespace std::chrono_literals;

namespace {

constexpr const char* kKey = kUpstreamKey;

// A logger writing into a string stream, at trace level.
struct CapturedLog {
  std::shared_ptr<std::ostringstream> stream = std::make_shared<std::ostringstream>();
  std::shared_ptr<spdlog::logger> logger;
  CapturedLog()
  {
    logger = std::make_shared<spdlog::logger>(
        "net-test", std::make_shared<spdlog::sinks::ostream_sink_mt>(*stream));
    logger->set_level(spdlog::level::trace);
  }
  std::string text() const
  {
    logger->flush();
    return stream->str();
  }
};

} // namespace

TEST_CASE("a chat completion is posted with bearer auth and the reply parsed",
          "[net][upstream_client][integration]")
{
  FakeUpstream fake({kKey, "", "", {}, 64});
  RecordingSleeper sleeper;
  UpstreamClient client({endpoint_for(fake)}, fast_options(sleeper));
  auto request = request_with("hello there");
  request.temperature = 0.5;
  request.max_tokens = 64;
  const auto outcome = client.complete("glm", request, {});
  const auto& reply = reply_of(outcome);
  CHECK(reply.content == "echo: hello there");
  CHECK(reply.model == "glm-4.5-flash");
  CHECK(reply.finish_reason == "stop");
  CHECK(reply.usage.value("total_tokens", 0) > 0);
  CHECK(reply.attempts == 1);
  CHECK(sleeper.recorded().empty());

  const auto requests = fake.requests();
  REQUIRE(requests.size() == 1);
  CHECK(requests[0].method == "POST");
  CHECK(requests[0].path == "/v1/chat/completions");
  CHECK(requests[0].headers.at("Authorization") == std::string("Bearer ") + kKey);
  const auto body = nlohmann::json::parse(requests[0].body);
  CHECK(body["model"] == "glm-4.5-flash");
  CHECK(body["stream"] == false);
  CHECK(body["temperature"] == 0.5);
  CHECK(body["max_tokens"] == 64);
  CHECK(body["messages"].size() == 2);
  CHECK(body["messages"][1]["content"] == "hello there");
  CHECK(client.circuit_state("glm") == "closed");
}

TEST_CASE("a fake upstream that does not record answers alike and keeps no request",
          "[net][upstream_client][integration]")
{
  // The benchmark's fake runs this way: its memory must not grow per call.
  FakeUpstream::Options options;
  options.record = false;
  FakeUpstream fake(options);
  RecordingSleeper sleeper;
  UpstreamClient plain({endpoint_for(fake)}, fast_options(sleeper));
  auto stream_options = fast_options(sleeper);
  stream_options.stream = true;
  UpstreamClient streamed({endpoint_for(fake)}, stream_options);
  for (int i = 0; i < 3; ++i) {
    const auto prompt = "hi " + std::to_string(i);
    CHECK(reply_of(plain.complete("glm", request_with(prompt), {})).content == "echo: " + prompt);
    const auto reply = reply_of(streamed.complete("glm", request_with(prompt), {}));
    CHECK(reply.content == "echo: " + prompt);
    CHECK(reply.streamed);
  }
  CHECK(fake.requests().empty());
  CHECK(fake.request_count() == 0);
}

TEST_CASE_METHOD(GlmOnFake,
                 "5xx answers are retried with exponential backoff",
                 "[net][upstream_client][integration]")
{
  SECTION("transient failures then success")
  {
    const auto& reply = reply_of(client.complete("glm", request_with("x [[fail_times=2]]"), {}));
    CHECK(reply.attempts == 3);
    CHECK(sleeper.recorded() == std::vector<std::chrono::milliseconds>{100ms, 200ms});
    CHECK(fake.request_count() == 3);
  }
  SECTION("persistent failure gives provider_error with the status and body")
  {
    const auto outcome = client.complete("glm", request_with("x [[status=502]]"), {});
    const auto& failure = failure_of(outcome);
    CHECK(failure.code == Errc::provider_error);
    CHECK(failure.details["status"] == 502);
    CHECK(failure.details["attempts"] == 3);
    CHECK(failure.details["body"].get<std::string>().find("fake upstream status 502") !=
          std::string::npos);
    CHECK(failure.message.find("after 3 attempts") != std::string::npos);
    CHECK(fake.request_count() == 3);
  }
}

TEST_CASE_METHOD(GlmOnFake,
                 "Retry-After is honoured on 429 and 503",
                 "[net][upstream_client][integration]")
{
  const auto& failure =
      failure_of(client.complete("glm", request_with("[[status=429]][[retry_after=2]]"), {}));
  CHECK(failure.code == Errc::over_capacity);
  CHECK(sleeper.recorded() == std::vector<std::chrono::milliseconds>{2000ms, 2000ms});
  const auto& reply = reply_of(
      client.complete("glm", request_with("[[fail_times=1]][[status=503]][[retry_after=1]]"), {}));
  CHECK(reply.attempts == 2);
  CHECK(sleeper.recorded().back() == 1000ms);
}

TEST_CASE("a Retry-After beyond the total budget stops retrying",
          "[net][upstream_client][integration]")
{
  FakeUpstream fake;
  RecordingSleeper sleeper;
  auto options = fast_options(sleeper);
  options.retry.max_total = 5s;
  UpstreamClient client({endpoint_for(fake)}, options);
  const auto& failure =
      failure_of(client.complete("glm", request_with("[[status=503]][[retry_after=60]]"), {}));
  CHECK(failure.code == Errc::provider_error);
  CHECK(failure.details["attempts"] == 1);
  CHECK(sleeper.recorded().empty());
}

TEST_CASE_METHOD(GlmOnFake,
                 "GLM's 429 code 1302 is a capacity signal",
                 "[net][upstream_client][integration]")
{
  const auto& failure = failure_of(client.complete("glm", request_with("[[glm_1302]]"), {}));
  CHECK(failure.code == Errc::over_capacity);
  CHECK(failure.details["upstream_code"] == "1302");
  CHECK(failure.message.find("1302") != std::string::npos);
  CHECK(fake.request_count() == 3);
  // Capacity is not a provider fault: the circuit stays closed.
  CHECK(client.circuit_state("glm") == "closed");
  const auto& reply =
      reply_of(client.complete("glm", request_with("[[glm_1302]][[fail_times=1]]"), {}));
  CHECK(reply.attempts == 2);
}

TEST_CASE("4xx answers are not retried", "[net][upstream_client][integration]")
{
  FakeUpstream fake({"right-key", "", "", {}, 64});
  RecordingSleeper sleeper;
  UpstreamClient client({endpoint_for(fake)}, fast_options(sleeper));
  const auto& auth = failure_of(client.complete("glm", request_with("hi"), {}));
  CHECK(auth.code == Errc::provider_error);
  CHECK(auth.details["status"] == 401);
  CHECK(auth.message.find("authentication failed") != std::string::npos);
  CHECK(fake.request_count() == 1);
  CHECK(sleeper.recorded().empty());
}

TEST_CASE_METHOD(GlmOnFake,
                 "a malformed reply is a provider error, not retried",
                 "[net][upstream_client][integration]")
{
  const auto& failure = failure_of(client.complete("glm", request_with("[[malformed]]"), {}));
  CHECK(failure.code == Errc::provider_error);
  CHECK(failure.message.find("malformed JSON") != std::string::npos);
  CHECK(fake.request_count() == 1);
}

TEST_CASE_METHOD(GlmOnFake,
                 "a reply missing optional fields is accepted",
                 "[net][upstream_client][integration]")
{
  ChatRequest request;
  request.model = "glm-4.5";
  request.messages = {{"user", "[[minimal]]"}};
  const auto reply = reply_of(client.complete("glm", request, {}));
  CHECK(reply.content == "echo: [[minimal]]");
  CHECK(reply.model == "glm-4.5"); // falls back to the requested model
  CHECK(reply.finish_reason.empty());
  CHECK(reply.usage == nlohmann::json::object());
}

TEST_CASE_METHOD(GlmOnFake,
                 "truncated bodies and dropped connections are retried",
                 "[net][upstream_client][integration]")
{
  const auto directive = GENERATE(as<std::string>{}, "[[truncate]]", "[[reset]]");
  CAPTURE(directive);
  const auto& reply =
      reply_of(client.complete("glm", request_with(directive + "[[fail_times=1]]"), {}));
  CHECK(reply.attempts == 2);
  const auto& failure = failure_of(client.complete("glm", request_with(directive + " again"), {}));
  CHECK(failure.details["attempts"] == 3);
  CHECK((failure.code == Errc::provider_error || failure.code == Errc::provider_unavailable));
}

TEST_CASE("an unreachable provider is provider_unavailable after retries",
          "[net][upstream_client][integration]")
{
  RecordingSleeper sleeper;
  UpstreamEndpoint endpoint;
  endpoint.id = "kimi";
  endpoint.display_name = "KIMI";
  endpoint.base_url = "http://127.0.0.1:" + std::to_string(closed_port()) + "/v1";
  endpoint.api_key = kKey;
  UpstreamClient client({endpoint}, fast_options(sleeper));
  const auto& failure = failure_of(client.complete("kimi", request_with("hi"), {}));
  CHECK(failure.code == Errc::provider_unavailable);
  CHECK(failure.message.find("unreachable") != std::string::npos);
  CHECK(failure.details["attempts"] == 3);
  const auto& unknown = failure_of(client.complete("nope", request_with("hi"), {}));
  CHECK(unknown.code == Errc::provider_unavailable);
}

TEST_CASE("a reply slower than the read timeout is a timeout",
          "[net][upstream_client][integration]")
{
  FakeUpstream fake;
  RecordingSleeper sleeper;
  auto endpoint = endpoint_for(fake);
  endpoint.read_timeout = 200ms;
  UpstreamClient client({endpoint}, fast_options(sleeper));
  const auto start = std::chrono::steady_clock::now();
  const auto& failure = failure_of(client.complete("glm", request_with("[[sleep_ms=3000]]"), {}));
  CHECK(failure.code == Errc::timeout);
  CHECK(std::chrono::steady_clock::now() - start < 2500ms);
  CHECK(fake.request_count() == 1);
}

TEST_CASE_METHOD(GlmOnFake,
                 "a stop request aborts an in-flight call within 100 ms",
                 "[net][upstream_client][integration]")
{
  std::stop_source stop;
  auto result = std::async(std::launch::async, [&] {
    auto outcome = client.complete("glm", request_with("[[hang]]"), stop.get_token());
    return std::make_pair(std::move(outcome), std::chrono::steady_clock::now());
  });
  REQUIRE(fake.wait_for_concurrency(1, 5s));
  const auto requested = std::chrono::steady_clock::now();
  stop.request_stop();
  REQUIRE(result.wait_for(5s) == std::future_status::ready);
  auto [outcome, returned] = result.get();
  const auto latency = std::chrono::duration_cast<std::chrono::microseconds>(returned - requested);
  WARN("cancellation latency: " << latency.count() << " us");
  CHECK(latency < 100ms);
  CHECK(failure_of(outcome).code == Errc::cancelled);
  CHECK(client.circuit_state("glm") == "closed");
  fake.release_hangs();
}

TEST_CASE("a stop request wakes a backoff wait within 100 ms",
          "[net][upstream_client][integration]")
{
  FakeUpstream fake;
  UpstreamOptions options;
  options.retry.max_attempts = 3;
  options.seed = 1;
  UpstreamClient client({endpoint_for(fake)}, options); // real, interruptible sleeper
  std::stop_source stop;
  auto result = std::async(std::launch::async, [&] {
    auto outcome =
        client.complete("glm", request_with("[[status=503]][[retry_after=30]]"), stop.get_token());
    return std::make_pair(std::move(outcome), std::chrono::steady_clock::now());
  });
  REQUIRE(fake.wait_for_requests(1, 5s));
  // The answer has been sent; give the client a moment to enter its wait,
  // then stop. Either way it must return promptly.
  std::this_thread::sleep_for(50ms);
  const auto requested = std::chrono::steady_clock::now();
  stop.request_stop();
  REQUIRE(result.wait_for(5s) == std::future_status::ready);
  auto [outcome, returned] = result.get();
  CHECK(returned - requested < 100ms);
  CHECK(failure_of(outcome).code == Errc::cancelled);
  CHECK(fake.request_count() == 1);
}

TEST_CASE_METHOD(GlmOnFake,
                 "a call whose stop was already requested sends nothing",
                 "[net][upstream_client][integration]")
{
  std::stop_source stop;
  stop.request_stop();
  CHECK(failure_of(client.complete("glm", request_with("hi"), stop.get_token())).code ==
        Errc::cancelled);
  CHECK(fake.request_count() == 0);
}

TEST_CASE("the circuit opens after repeated failures, fails fast, and closes after a good probe",
          "[net][upstream_client][integration]")
{
  FakeUpstream fake;
  RecordingSleeper sleeper;
  auto options = fast_options(sleeper);
  options.retry.max_attempts = 1;
  options.circuit.failure_threshold = 2;
  options.circuit.cool_down = 10s;
  auto now = std::make_shared<std::chrono::steady_clock::time_point>();
  options.clock = [now] { return *now; };
  UpstreamClient client({endpoint_for(fake)}, options);
  CHECK(failure_of(client.complete("glm", request_with("[[status=500]]"), {})).code ==
        Errc::provider_error);
  CHECK(client.circuit_state("glm") == "closed");
  CHECK(failure_of(client.complete("glm", request_with("[[status=500]]"), {})).code ==
        Errc::provider_error);
  CHECK(client.circuit_state("glm") == "open");
  const auto& fast = failure_of(client.complete("glm", request_with("ok"), {}));
  CHECK(fast.code == Errc::provider_unavailable);
  CHECK(fast.details["circuit"] == "open");
  CHECK(fake.request_count() == 2); // failed fast: nothing sent
  *now += 10s;
  CHECK(client.circuit_state("glm") == "half_open");
  CHECK(reply_of(client.complete("glm", request_with("ok"), {})).content == "echo: ok");
  CHECK(client.circuit_state("glm") == "closed");
}

TEST_CASE("a half-open probe that ends by an exception gives its probe slot back",
          "[net][upstream_client][integration]")
{
  // The probe's outcome is owned by a pass that reports neutral when the
  // request unwinds: a probe slot that stayed taken would refuse every call
  // to the provider until a restart.
  FakeUpstream fake;
  auto options = fast_options(RecordingSleeper{});
  options.retry.max_attempts = 2;
  options.circuit.failure_threshold = 1;
  options.circuit.cool_down = 10s;
  auto throwing = std::make_shared<std::atomic<bool>>(false);
  options.sleeper = [throwing](std::chrono::milliseconds, const std::stop_token&) {
    if (throwing->load()) {
      throw 42; // not a std::exception: nothing on the way catches it
    }
    return true;
  };
  auto now = std::make_shared<std::chrono::steady_clock::time_point>();
  options.clock = [now] { return *now; };
  UpstreamClient client({endpoint_for(fake)}, options);
  CHECK(failure_of(client.complete("glm", request_with("[[status=500]]"), {})).code ==
        Errc::provider_error);
  REQUIRE(client.circuit_state("glm") == "open");
  *now += 10s;
  throwing->store(true); // the probe fails retryably and its backoff throws
  CHECK_THROWS_AS(client.complete("glm", request_with("[[status=500]]"), {}), int);
  throwing->store(false);
  CHECK(reply_of(client.complete("glm", request_with("ok"), {})).content == "echo: ok");
  CHECK(client.circuit_state("glm") == "closed");
}

TEST_CASE_METHOD(GlmOnFake,
                 "concurrent calls run in parallel and all succeed",
                 "[net][upstream_client][integration]")
{
  constexpr int kCalls = 8;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kCalls; ++i) {
    threads.emplace_back([&, i] {
      const auto outcome =
          client.complete("glm", request_with("n" + std::to_string(i) + "[[hang]]"), {});
      if (const auto* reply = std::get_if<ChatReply>(&outcome);
          reply != nullptr && reply->content.rfind("echo: n", 0) == 0) {
        ok.fetch_add(1);
      }
    });
  }
  // All in flight at once: none waits for another (a fixed delay proved this
  // only when every thread started within it, which a loaded machine breaks).
  CHECK(fake.wait_for_concurrency(kCalls, 10s));
  fake.release_hangs();
  for (auto& thread : threads) {
    thread.join();
  }
  CHECK(ok.load() == kCalls);
  CHECK(fake.peak_concurrency() == kCalls);
}

TEST_CASE("the API key never appears in logs or error messages",
          "[net][upstream_client][integration]")
{
  FakeUpstream fake;
  RecordingSleeper sleeper;
  CapturedLog log;
  auto options = fast_options(sleeper);
  UpstreamClient client({endpoint_for(fake)}, options, log.logger);
  std::string messages;
  for (const std::string prompt : {"ok",
                                   "[[status=500]]",
                                   "[[status=401]]",
                                   "[[glm_1302]]",
                                   "[[malformed]]",
                                   "[[truncate]]",
                                   "[[reset]]",
                                   "[[status=400]][[echo_auth]]",
                                   "[[status=503]][[echo_auth]]",
                                   "last"}) {
    const auto outcome = client.complete("glm", request_with(prompt), {});
    if (const auto* failure = std::get_if<ChatFailure>(&outcome)) {
      messages += failure->message + failure->details.dump();
    }
  }
  messages += client.probe("glm", 1s).message;
  CHECK(messages.find("you sent Bearer <redacted") != std::string::npos); // the echo was scrubbed
  const std::string logged = log.text();
  CHECK(logged.find("upstream failed") != std::string::npos); // logging did happen
  CHECK(logged.find(kKey) == std::string::npos);
  CHECK(messages.find(kKey) == std::string::npos);
}

TEST_CASE("a probe reports reachable, auth failed and unreachable",
          "[net][upstream_client][integration]")
{
  FakeUpstream fake({kKey, "", "", {}, 64});
  auto good = endpoint_for(fake, "kimi");
  auto bad = endpoint_for(fake, "glm");
  bad.api_key = "wrong";
  UpstreamClient client({good, bad});
  const auto reachable = client.probe("kimi", 2s);
  CHECK(reachable.status == ProbeResult::Status::reachable);
  CHECK(reachable.http_status == 200);
  CHECK(fake.requests().back().path == "/v1/models");
  CHECK(fake.requests().back().method == "GET");
  const auto denied = client.probe("glm", 2s);
  CHECK(denied.status == ProbeResult::Status::auth_failed);
  CHECK(exai::net::to_string(denied.status) == "auth_failed");
  UpstreamEndpoint gone;
  gone.id = "kimi";
  gone.display_name = "KIMI";
  gone.base_url = "http://127.0.0.1:" + std::to_string(closed_port());
  gone.api_key = kKey;
  UpstreamClient nowhere({gone});
  CHECK(nowhere.probe("kimi", 500ms).status == ProbeResult::Status::unreachable);
}

TEST_CASE_METHOD(GlmOnFake,
                 "an upstream attempt ends at the call's deadline, not the provider's read timeout",
                 "[net][upstream_client][integration]")
{
  auto request = request_with("[[hang]]");
  const auto start = std::chrono::steady_clock::now();
  request.deadline = start + 300ms;
  const auto outcome = client.complete("glm", request, {});
  const auto took = std::chrono::steady_clock::now() - start;
  CHECK(failure_of(outcome).code == Errc::timeout);
  CHECK(took >= 250ms);
  CHECK(took < 3s);
  // A deadline already past sends nothing.
  const auto before = fake.request_count();
  request.deadline = std::chrono::steady_clock::now() - 1ms;
  CHECK(failure_of(client.complete("glm", request, {})).code == Errc::timeout);
  CHECK(fake.request_count() == before);
  fake.release_hangs();
}
