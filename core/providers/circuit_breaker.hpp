#pragma once

#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <string_view>

namespace exai::core {

// A per-provider circuit breaker. Closed: calls pass. After
// `failure_threshold` consecutive failures it opens: calls fail fast. Once
// `cool_down` has passed it is half-open: exactly one probe call may pass;
// its success closes the circuit, its failure opens it again for another
// cool-down. Thread-safe; the clock is injected so tests need no sleeping.
class CircuitBreaker {
public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;

  enum class State { closed, open, half_open };

  struct Options {
    int failure_threshold = 5;
    std::chrono::milliseconds cool_down{30000};
  };

  explicit CircuitBreaker(Options options, Clock clock = default_clock());

  // One admitted request's duty to report its outcome, discharged once by
  // whichever of success/failure/neutral comes first. A pass dropped without
  // a report (the request ended by an exception) reports neutral: a half-open
  // breaker whose probe never reported would refuse every request for good.
  class Pass {
  public:
    explicit Pass(CircuitBreaker& breaker) noexcept
        : breaker_(&breaker)
    {
    }
    Pass(Pass&& other) noexcept;
    Pass& operator=(Pass&&) = delete;
    Pass(const Pass&) = delete;
    Pass& operator=(const Pass&) = delete;
    ~Pass();

    void success();
    void failure();
    void neutral();

  private:
    // Calls `outcome` on the breaker unless a report was already made.
    void report(void (CircuitBreaker::*outcome)());

    CircuitBreaker* breaker_;
  };

  // allow() with its report owned by the returned pass; nullopt: fail fast.
  [[nodiscard]] std::optional<Pass> admit();

  // Asks to make one call. True when closed, or when half-open and no probe
  // is out (the caller becomes the probe and must report its outcome with
  // record_success/record_failure/record_neutral). False: fail fast.
  [[nodiscard]] bool allow();

  // The call reached the provider and it answered properly.
  void record_success();
  // The provider failed (unreachable, 5xx after retries, timeout).
  void record_failure();
  // The outcome says nothing about the provider's health (cancelled, 4xx,
  // capacity): counts neither way, but frees the half-open probe slot.
  void record_neutral();

  // The state now; an open circuit whose cool-down has passed reads half_open.
  State state() const;

  // How long until an open circuit admits a probe (zero unless open).
  std::chrono::milliseconds retry_in() const;

  static Clock default_clock();

private:
  State state_locked(std::chrono::steady_clock::time_point now) const;

  const Options options_;
  const Clock clock_;
  mutable std::mutex mutex_;
  State state_ = State::closed;                  // guarded by mutex_ (open stays open until probed)
  int consecutive_failures_ = 0;                 // guarded by mutex_
  bool probe_out_ = false;                       // guarded by mutex_
  std::chrono::steady_clock::time_point opened_; // guarded by mutex_
};

// "closed" | "open" | "half_open".
std::string_view to_string(CircuitBreaker::State state) noexcept;

} // namespace exai::core
