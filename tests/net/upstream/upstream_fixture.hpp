#pragma once

// What the upstream client tests share: an endpoint on a fake upstream, retry
// options that record their backoff delays instead of sleeping them, a chat
// request and the two ways its outcome is read.

#include "net/upstream/transfer_loop.hpp"
#include "net/upstream/upstream_client.hpp"
#include "tests/support/fake_upstream.hpp"

#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <catch2/catch.hpp>

#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

namespace exai::test {

inline constexpr const char* kUpstreamKey = "sk-test-SECRET-0123456789abcdef";

// Records backoff delays instead of sleeping; copies share one record.
struct RecordingSleeper {
  std::shared_ptr<std::mutex> mutex = std::make_shared<std::mutex>();
  std::shared_ptr<std::vector<std::chrono::milliseconds>> delays =
      std::make_shared<std::vector<std::chrono::milliseconds>>();

  net::Sleeper sleeper() const
  {
    return [mutex = mutex, delays = delays](std::chrono::milliseconds delay, std::stop_token stop) {
      const std::lock_guard lock(*mutex);
      delays->push_back(delay);
      return !stop.stop_requested();
    };
  }
  std::vector<std::chrono::milliseconds> recorded() const
  {
    const std::lock_guard lock(*mutex);
    return *delays;
  }
  std::size_t count() const { return recorded().size(); }
};

// A loopback port with nothing listening on it.
inline std::uint16_t
closed_port()
{
  Poco::Net::ServerSocket socket(Poco::Net::SocketAddress("127.0.0.1", 0));
  const auto port = socket.address().port();
  socket.close();
  return port;
}

inline net::UpstreamEndpoint
endpoint_for(const FakeUpstream& fake, const std::string& id = "glm", std::size_t pool_size = 4)
{
  net::UpstreamEndpoint endpoint;
  endpoint.id = id;
  endpoint.display_name = id == "glm" ? "GLM" : "KIMI";
  endpoint.base_url = fake.base_url();
  endpoint.api_key = kUpstreamKey;
  endpoint.connect_timeout = std::chrono::seconds(2);
  endpoint.read_timeout = std::chrono::seconds(5);
  endpoint.pool_size = pool_size;
  return endpoint;
}

// Three attempts, 100 ms doubling to 1 s without jitter, a circuit that does
// not open during a test; delays go to `sleeper`.
inline net::UpstreamOptions
fast_options(const RecordingSleeper& sleeper)
{
  using namespace std::chrono_literals;
  net::UpstreamOptions options;
  options.retry.max_attempts = 3;
  options.retry.base_delay = 100ms;
  options.retry.max_delay = 1000ms;
  options.retry.max_total = 30s;
  options.retry.jitter = 0.0;
  options.circuit.failure_threshold = 100;
  options.seed = 1;
  options.sleeper = sleeper.sleeper();
  return options;
}

// One client with GLM on a fake upstream, its backoff delays recorded
// (TEST_CASE_METHOD: the members are the test's names).
struct GlmOnFake {
  FakeUpstream fake;
  RecordingSleeper sleeper;
  net::UpstreamClient client{{endpoint_for(fake)}, fast_options(sleeper)};
};

// A short chat to `model`: a system line and the user's `prompt`.
inline core::ChatRequest
request_with(std::string prompt, std::string model = "glm-4.5-flash")
{
  core::ChatRequest request;
  request.model = std::move(model);
  request.messages = {{"system", "be brief"}, {"user", std::move(prompt)}};
  return request;
}

// The reply of an outcome that must be one (the test fails naming the error).
inline core::ChatReply
reply_of(const core::ChatOutcome& outcome)
{
  if (const auto* failure = std::get_if<core::ChatFailure>(&outcome)) {
    FAIL("unexpected failure: " << failure->message);
  }
  return std::get<core::ChatReply>(outcome);
}

inline core::ChatFailure
failure_of(const core::ChatOutcome& outcome)
{
  REQUIRE(std::holds_alternative<core::ChatFailure>(outcome));
  return std::get<core::ChatFailure>(outcome);
}

// UpstreamClient::start as a test reads it: started on a transfer loop's
// thread, its outcome awaited like complete()'s.
class LoopCaller {
public:
  explicit LoopCaller(net::UpstreamClient& client)
      : client_(client)
  {
  }

  core::ChatOutcome
  complete(std::string_view provider, core::ChatRequest request, std::stop_token stop = {})
  {
    auto outcome = start(provider, std::move(request), std::move(stop));
    REQUIRE(outcome.wait_for(std::chrono::seconds(20)) == std::future_status::ready);
    return outcome.get();
  }

  // Starts the call and hands back its outcome to come. The outcome must
  // arrive on the loop's thread, and never inside start().
  std::future<core::ChatOutcome>
  start(std::string_view provider, core::ChatRequest request, std::stop_token stop = {})
  {
    auto promise = std::make_shared<std::promise<core::ChatOutcome>>();
    auto future = promise->get_future();
    std::promise<bool> started;
    thread_.loop().defer([&] {
      const auto loop_thread = std::this_thread::get_id();
      auto inside = std::make_shared<bool>(true);
      auto wrong = wrong_thread_;
      const bool ok =
          client_.start(provider,
                        std::move(request),
                        std::move(stop),
                        [promise, inside, wrong, loop_thread](core::ChatOutcome outcome) {
                          if (*inside || std::this_thread::get_id() != loop_thread) {
                            wrong->store(true);
                          }
                          promise->set_value(std::move(outcome));
                        });
      *inside = false;
      started.set_value(ok);
    });
    REQUIRE(started.get_future().get());
    return future;
  }

  // Some outcome arrived inside start() or on another thread.
  bool misdelivered() const { return wrong_thread_->load(); }
  net::TransferLoop& loop() { return thread_.loop(); }

private:
  net::UpstreamClient& client_;
  std::shared_ptr<std::atomic<bool>> wrong_thread_ = std::make_shared<std::atomic<bool>>(false);
  net::TransferThread thread_; // last: stopped before the rest goes
};

} // namespace exai::test
