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
CapacityLimiter::acquire_until(Clock::time_point deadline,
                               const std::stop_token& stop,
                               AcquireStatus* status)
{
  const auto report = [status](AcquireStatus s) {
    if (status != nullptr) {
      *status = s;
    }
  };
  Waiter self;
  bool cancelled = false; // guarded by mutex_
  // Registered before taking the lock: if stop was already requested the
  // callback runs right here and needs the mutex. It takes the same mutex as
  // a grant, so the two cannot race; the stop_callback destructor (after the
  // lock below is released) waits for a callback running on another thread.
  const std::stop_callback on_stop(stop, [&] {
    const std::lock_guard guard(mutex_);
    cancelled = true;
    self.wake.notify_one();
  });
  std::unique_lock lock(mutex_);
  if (cancelled) {
    report(AcquireStatus::cancelled);
    return std::nullopt;
  }
  if (in_use_ < capacity_ && waiters_.empty()) {
    ++in_use_;
    report(AcquireStatus::acquired);
    return Permit(*this);
  }
  const auto position = waiters_.insert(waiters_.end(), &self);
  self.wake.wait_until(lock, deadline, [&] { return self.granted || cancelled; });
  if (self.granted) {
    if (!cancelled) {
      report(AcquireStatus::acquired);
      return Permit(*this);
    }
    // Granted and cancelled at once: the unit passes on to the next waiter
    // once the lock is released, through the Permit destructor.
    lock.unlock();
    {
      const Permit discard(*this);
    }
    report(AcquireStatus::cancelled);
    return std::nullopt;
  }
  waiters_.erase(position);
  report(cancelled ? AcquireStatus::cancelled : AcquireStatus::timed_out);
  return std::nullopt;
}

void
CapacityLimiter::release() noexcept
{
  const std::lock_guard lock(mutex_);
  if (!waiters_.empty()) {
    // Hand the unit straight to the oldest waiter; in_use_ is unchanged.
    Waiter* next = waiters_.front();
    waiters_.pop_front();
    next->granted = true;
    // Notify under the lock: the waiter may destroy `next` right after.
    next->wake.notify_one();
    return;
  }
  --in_use_;
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
