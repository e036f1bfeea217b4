#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <random>
#include <string_view>

namespace exai::core {

// Limits of one call's retries.
struct RetryOptions {
  int max_attempts = 3;                       // attempts in all, first one included (>= 1)
  std::chrono::milliseconds base_delay{500};  // delay before the 2nd attempt (before jitter)
  std::chrono::milliseconds max_delay{8000};  // cap of the exponential delay
  std::chrono::milliseconds max_total{60000}; // no retry starts after this much time in the call
  double jitter = 0.25;                       // fraction of the delay randomly taken off
};

// Exponential backoff with jitter, honouring Retry-After. Thread-safe (the
// random generator is guarded); seed it for reproducible tests.
class RetryPolicy {
public:
  explicit RetryPolicy(RetryOptions options, std::uint64_t seed = std::random_device{}());

  // The delay before the next attempt after `failed_attempts` attempts have
  // failed (1 = the first one), `elapsed` into the call, or nullopt when no
  // retry is allowed (attempts used up, or the wait would end after
  // max_total). With `retry_after` (the server's Retry-After) that exact
  // delay is used instead of the backoff; otherwise the delay is
  // min(max_delay, base_delay * 2^(failed_attempts-1)) minus a random jitter
  // fraction in [0, jitter].
  std::optional<std::chrono::milliseconds>
  next_delay(int failed_attempts,
             std::optional<std::chrono::milliseconds> retry_after,
             std::chrono::milliseconds elapsed);

  const RetryOptions& options() const noexcept { return options_; }

private:
  const RetryOptions options_;
  std::mutex mutex_;
  std::mt19937_64 random_; // guarded by mutex_
};

// Parses a Retry-After header value: delta seconds ("120") or an HTTP date
// ("Fri, 31 Dec 1999 23:59:59 GMT", relative to `now`; a past date gives 0).
// Returns nullopt for anything else.
std::optional<std::chrono::milliseconds>
parse_retry_after(std::string_view value,
                  std::chrono::system_clock::time_point now = std::chrono::system_clock::now());

} // namespace exai::core
