#pragma once

// What the upstream client tests share: an endpoint on a fake upstream, retry
// options that record their backoff delays instead of sleeping them.

#include "net/upstream/upstream_client.hpp"
#include "tests/support/fake_upstream.hpp"

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
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

} // namespace exai::test
