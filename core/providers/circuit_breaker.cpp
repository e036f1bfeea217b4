#include "core/providers/circuit_breaker.hpp"

#include "core/util/enum_names.hpp"

#include <algorithm>
#include <utility>

namespace exai::core {

CircuitBreaker::CircuitBreaker(Options options, Clock clock)
    : options_(options)
    , clock_(std::move(clock))
{
}

CircuitBreaker::Clock
CircuitBreaker::default_clock()
{
  return [] { return std::chrono::steady_clock::now(); };
}

CircuitBreaker::State
CircuitBreaker::state_locked(std::chrono::steady_clock::time_point now) const
{
  if (state_ == State::open && now - opened_ >= options_.cool_down) {
    return State::half_open;
  }
  return state_;
}

bool
CircuitBreaker::allow()
{
  const auto now = clock_();
  const std::lock_guard lock(mutex_);
  switch (state_locked(now)) {
  case State::closed:
    return true;
  case State::open:
    return false;
  case State::half_open:
    if (probe_out_) {
      return false;
    }
    state_ = State::half_open;
    probe_out_ = true;
    return true;
  }
  return false;
}

CircuitBreaker::Pass::Pass(Pass&& other) noexcept
    : breaker_(std::exchange(other.breaker_, nullptr))
{
}

CircuitBreaker::Pass::~Pass()
{
  neutral();
}

void
CircuitBreaker::Pass::report(void (CircuitBreaker::*outcome)())
{
  if (auto* breaker = std::exchange(breaker_, nullptr)) {
    (breaker->*outcome)();
  }
}

void
CircuitBreaker::Pass::success()
{
  report(&CircuitBreaker::record_success);
}

void
CircuitBreaker::Pass::failure()
{
  report(&CircuitBreaker::record_failure);
}

void
CircuitBreaker::Pass::neutral()
{
  report(&CircuitBreaker::record_neutral);
}

std::optional<CircuitBreaker::Pass>
CircuitBreaker::admit()
{
  if (!allow()) {
    return std::nullopt;
  }
  return Pass(*this);
}

void
CircuitBreaker::record_success()
{
  const std::lock_guard lock(mutex_);
  state_ = State::closed;
  consecutive_failures_ = 0;
  probe_out_ = false;
}

void
CircuitBreaker::record_failure()
{
  const auto now = clock_();
  const std::lock_guard lock(mutex_);
  ++consecutive_failures_;
  if (state_ == State::half_open || consecutive_failures_ >= options_.failure_threshold) {
    state_ = State::open;
    opened_ = now;
  }
  probe_out_ = false;
}

void
CircuitBreaker::record_neutral()
{
  const std::lock_guard lock(mutex_);
  probe_out_ = false;
}

CircuitBreaker::State
CircuitBreaker::state() const
{
  const auto now = clock_();
  const std::lock_guard lock(mutex_);
  return state_locked(now);
}

std::chrono::milliseconds
CircuitBreaker::retry_in() const
{
  const auto now = clock_();
  const std::lock_guard lock(mutex_);
  if (state_locked(now) != State::open) {
    return std::chrono::milliseconds(0);
  }
  return std::max(
      std::chrono::milliseconds(0),
      std::chrono::duration_cast<std::chrono::milliseconds>(options_.cool_down - (now - opened_)));
}

std::string_view
to_string(CircuitBreaker::State state) noexcept
{
  static constexpr EnumNames<CircuitBreaker::State, 3> kNames{{"closed", "open", "half_open"},
                                                              "closed"};
  return kNames(state);
}

} // namespace exai::core
