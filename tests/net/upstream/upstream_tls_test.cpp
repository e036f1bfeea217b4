#include "core/config/settings.hpp"
#include "net/upstream/upstream_client.hpp"
#include "net/upstream/upstream_session.hpp"
#include "tests/net/upstream/upstream_fixture.hpp"
#include "tests/support/fake_upstream.hpp"
#include "tests/support/test_ca.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <future>
#include <string>

using namespace exai::core;
using namespace exai::net;
using namespace exai::test;
using namespace std::chrono_literals;

namespace {

exai::net::UpstreamOptions
options_trusting(const std::string& ca_file)
{
  // Through the documented setting, as `exai serve` reads it.
  const exai::core::Settings settings({}, {{"EXAI_CA_FILE", ca_file}}, {});
  auto options = exai::net::upstream_options_from(settings);
  options.retry.max_attempts = 2;
  options.sleeper = [](std::chrono::milliseconds, std::stop_token) { return true; };
  return options;
}

ChatRequest
hello()
{
  ChatRequest request;
  request.model = "kimi-k2-0905-preview";
  request.messages = {{"user", "over tls"}};
  return request;
}

} // namespace

TEST_CASE("HTTPS to a fake signed by a CA trusted through EXAI_CA_FILE succeeds",
          "[net][upstream_tls][integration]")
{
  const TestCa ca;
  FakeUpstream fake({kUpstreamKey, ca.server_cert(), ca.server_key(), {}, 16});
  REQUIRE(fake.base_url().rfind("https://127.0.0.1:", 0) == 0);
  UpstreamClient client({endpoint_for(fake, "kimi")}, options_trusting(ca.ca_cert()));
  const auto outcome = client.complete("kimi", hello(), {});
  if (const auto* failure = std::get_if<ChatFailure>(&outcome)) {
    FAIL(failure->message);
  }
  CHECK(std::get<ChatReply>(outcome).content == "echo: over tls");
  CHECK(fake.requests().at(0).headers.at("Authorization") == std::string("Bearer ") + kUpstreamKey);
  CHECK(client.probe("kimi", 2s).status == exai::net::ProbeResult::Status::reachable);
}

TEST_CASE("a request larger than the collect limit arrives whole over TLS",
          "[net][upstream_tls][integration]")
{
  // A long context leaves in pieces of UpstreamSession::kCollectLimit, each
  // several TLS records: the server must get every byte, in order.
  const TestCa ca;
  FakeUpstream fake({kUpstreamKey, ca.server_cert(), ca.server_key(), {}, 16});
  UpstreamClient client({endpoint_for(fake, "kimi")}, options_trusting(ca.ca_cert()));
  std::string prompt;
  while (prompt.size() < 3 * UpstreamSession::kCollectLimit) {
    prompt += "line " + std::to_string(prompt.size()) + "\n";
  }
  auto request = hello();
  request.messages = {{"user", prompt}};
  const auto outcome = client.complete("kimi", request, {});
  if (const auto* failure = std::get_if<ChatFailure>(&outcome)) {
    FAIL(failure->message);
  }
  CHECK(std::get<ChatReply>(outcome).content == "echo: " + prompt);
}

TEST_CASE("cancellation aborts an in-flight HTTPS call promptly",
          "[net][upstream_tls][integration]")
{
  const TestCa ca;
  FakeUpstream fake({kUpstreamKey, ca.server_cert(), ca.server_key(), {}, 16});
  UpstreamClient client({endpoint_for(fake, "kimi")}, options_trusting(ca.ca_cert()));
  std::stop_source stop;
  auto request = hello();
  request.messages = {{"user", "[[hang]]"}};
  auto result = std::async(std::launch::async, [&] {
    auto outcome = client.complete("kimi", request, stop.get_token());
    return std::make_pair(std::move(outcome), std::chrono::steady_clock::now());
  });
  const bool arrived = fake.wait_for_concurrency(1, 5s);
  const auto requested = std::chrono::steady_clock::now();
  stop.request_stop();
  REQUIRE(result.wait_for(5s) == std::future_status::ready);
  const auto [outcome, returned] = result.get();
  REQUIRE(arrived);
  CHECK(returned - requested < 100ms);
  REQUIRE(std::holds_alternative<ChatFailure>(outcome));
  CHECK(std::get<ChatFailure>(outcome).code == Errc::cancelled);
  fake.release_hangs();
}

TEST_CASE("an untrusted certificate fails with a clear certificate error",
          "[net][upstream_tls][integration]")
{
  const TestCa ca;
  FakeUpstream fake({kUpstreamKey, ca.untrusted_cert(), ca.untrusted_key(), {}, 16});
  SECTION("against the test CA")
  {
    UpstreamClient client({endpoint_for(fake, "kimi")}, options_trusting(ca.ca_cert()));
    const auto outcome = client.complete("kimi", hello(), {});
    REQUIRE(std::holds_alternative<ChatFailure>(outcome));
    const auto& failure = std::get<ChatFailure>(outcome);
    WARN("untrusted certificate: " << failure.message);
    CHECK(failure.code == Errc::provider_unavailable);
    CHECK(failure.message.find("certificate") != std::string::npos);
    CHECK(failure.message.find(kUpstreamKey) == std::string::npos);
    CHECK(failure.details["attempts"] == 1); // a certificate problem is not retried
    CHECK(fake.request_count() == 0);        // nothing was sent
  }
  SECTION("against the system store")
  {
    exai::net::UpstreamOptions options;
    options.retry.max_attempts = 1;
    UpstreamClient client({endpoint_for(fake, "kimi")}, options);
    const auto outcome = client.complete("kimi", hello(), {});
    REQUIRE(std::holds_alternative<ChatFailure>(outcome));
    CHECK(std::get<ChatFailure>(outcome).message.find("certificate") != std::string::npos);
    CHECK(fake.request_count() == 0);
  }
}

TEST_CASE("a missing EXAI_CA_FILE is a configuration error", "[net][upstream_tls]")
{
  UpstreamEndpoint endpoint;
  endpoint.id = "kimi";
  endpoint.display_name = "KIMI";
  endpoint.base_url = "https://127.0.0.1:1/v1";
  endpoint.api_key = kUpstreamKey;
  try {
    UpstreamClient client({endpoint}, options_trusting("/nonexistent/ca.pem"));
    FAIL("expected Error(config_invalid)");
  } catch (const exai::core::Error& e) {
    CHECK(e.code() == Errc::config_invalid);
    CHECK(std::string(e.what()).find("EXAI_CA_FILE=/nonexistent/ca.pem") != std::string::npos);
  }
}

TEST_CASE("HTTPS on a transfer loop verifies with the client's CA file, not the loop's",
          "[net][upstream_tls][upstream_async]")
{
  const TestCa ca;
  FakeUpstream fake({kUpstreamKey, ca.server_cert(), ca.server_key(), {}, 16});
  auto options = options_trusting(ca.ca_cert());
  options.idle_timeout = std::chrono::milliseconds(0); // a new connection per call
  UpstreamClient client({endpoint_for(fake, "kimi")}, options);
  LoopCaller caller(client); // its loop has no CA file of its own
  CHECK(reply_of(caller.complete("kimi", hello())).content == "echo: over tls");
  CHECK(reply_of(caller.complete("kimi", hello())).content == "echo: over tls");
  CHECK(client.pool_stats("kimi").opened == 2);
  CHECK(client.pool_stats("kimi").reused == 0);

  UpstreamClient untrusting({endpoint_for(fake, "kimi")}, options_trusting(ca.untrusted_cert()));
  LoopCaller refused(untrusting);
  const auto failure = failure_of(refused.complete("kimi", hello()));
  CHECK(failure.code == Errc::provider_unavailable);
  CHECK_THAT(failure.message, Catch::Contains("TLS"));
}
