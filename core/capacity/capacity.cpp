#include "core/capacity/capacity.hpp"

#include "core/error.hpp"

namespace exai::core {

CapacityLimiter::CapacityLimiter(std::string name, std::size_t capacity)
    : name_(std::move(name))
    , capacity_(capacity)
{
  if (capacity_ == 0) {
    throw Error(Errc::config_invalid, "capacity of '" + name_ + "' must be at least 1");
  }
}

std::optional<Permit>
CapacityLimiter::try_acquire()
{
  const std::lock_guard lock(mutex_);
  if (in_use_ < capacity_ && waiters_.empty()) {
    ++in_use_;
    return Permit(*this);
  }
  return std::nullopt;
}

std::optional<Permit>
CapacityLimiter::acquire_or_queue(Waiter& waiter)
{
  const std::lock_guard lock(mutex_);
  if (in_use_ < capacity_ && waiters_.empty()) {
    ++in_use_;
    return Permit(*this);
  }
  waiter.position_ = waiters_.insert(waiters_.end(), &waiter);
  waiter.queued_ = true;
  return std::nullopt;
}

bool
CapacityLimiter::withdraw(Waiter& waiter) noexcept
{
  const std::lock_guard lock(mutex_);
  if (!waiter.queued_) {
    return false;
  }
  waiters_.erase(waiter.position_);
  waiter.queued_ = false;
  return true;
}

std::optional<Permit>
PermitSource::acquire_until(Clock::time_point deadline,
                            const std::stop_token& stop,
                            AcquireStatus* status)
{
  const auto report = [status](AcquireStatus s) {
    if (status != nullptr) {
      *status = s;
    }
  };
  if (stop.stop_requested()) {
    report(AcquireStatus::cancelled);
    return std::nullopt;
  }
  // The grant arrives on the releasing thread; it only parks the permit here.
  // Shared with the callbacks: a source that answers later may still call
  // on_full after this function has returned.
  struct State {
    std::mutex mutex;
    std::condition_variable changed;
    std::optional<Permit> granted; // guarded by mutex
    bool cancelled = false;        // guarded by mutex
    bool full = false;             // guarded by mutex: the source said it must wait
    bool refused = false;          // guarded by mutex: the source will not grant
  };
  const auto state = std::make_shared<State>();
  Waiter waiter(
      [state](Permit permit) {
        const std::lock_guard guard(state->mutex);
        state->granted.emplace(std::move(permit));
        state->changed.notify_one();
      },
      [state] {
        const std::lock_guard guard(state->mutex);
        state->full = true;
        state->changed.notify_one();
      },
      [state] {
        const std::lock_guard guard(state->mutex);
        state->refused = true;
        state->changed.notify_one();
      });
  if (auto permit = acquire_or_queue(waiter)) {
    report(AcquireStatus::acquired);
    return permit;
  }
  const std::stop_callback on_stop(stop, [&state] {
    const std::lock_guard guard(state->mutex);
    state->cancelled = true;
    state->changed.notify_one();
  });
  std::unique_lock lock(state->mutex);
  state->changed.wait_until(lock, deadline, [&state] {
    return state->granted.has_value() || state->cancelled || state->refused;
  });
  if (!state->granted && !state->cancelled && !state->refused && answers_later()) {
    // The source has not answered yet (a deadline in the past still gets one
    // try): wait for its answer, which comes within its own timeout.
    state->changed.wait(lock, [&state] {
      return state->granted.has_value() || state->cancelled || state->full || state->refused;
    });
  }
  if (state->refused) {
    report(AcquireStatus::refused); // no longer queued: nothing to withdraw
    return std::nullopt;
  }
  if (!state->granted) {
    lock.unlock();
    if (withdraw(waiter)) {
      report(state->cancelled ? AcquireStatus::cancelled : AcquireStatus::timed_out);
      return std::nullopt;
    }
    // Granted while we gave up: the permit is on its way; take it, then
    // decide below like any grant.
    lock.lock();
    state->changed.wait(lock, [&state] { return state->granted.has_value(); });
  }
  if (state->cancelled) {
    // The unit passes on to the next waiter (outside our lock).
    lock.unlock();
    state->granted.reset();
    report(AcquireStatus::cancelled);
    return std::nullopt;
  }
  report(AcquireStatus::acquired);
  return std::move(state->granted);
}

void
CapacityLimiter::release() noexcept
{
  Waiter::Grant grant;
  {
    const std::lock_guard lock(mutex_);
    if (waiters_.empty()) {
      --in_use_;
    } else {
      // Hand the unit straight to the oldest waiter; in_use_ is unchanged.
      // Its callback is copied under the lock: once unqueued, the waiter may
      // be destroyed by a cancellation racing with this grant.
      Waiter* next = waiters_.front();
      waiters_.pop_front();
      next->queued_ = false;
      grant = next->grant_;
    }
  }
  if (!grant) {
    if (on_release_) {
      on_release_();
    }
    return;
  }
  try {
    grant(Permit(*this));
  } catch (...) {
    // The Permit given to the callback was destroyed during unwinding, which
    // released the unit again: nothing is lost.
  }
}

LimiterStats
CapacityLimiter::stats() const
{
  const std::lock_guard lock(mutex_);
  return {capacity_, in_use_, waiters_.size()};
}

bool
CapacityLimiter::idle() const
{
  const std::lock_guard lock(mutex_);
  return in_use_ == 0 && waiters_.empty();
}

} // namespace exai::core
