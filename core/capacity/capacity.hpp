#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <list>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <utility>

namespace exai::core {

class Permit;

// How a blocking acquisition ended when it did not yield a permit.
enum class AcquireStatus { acquired, timed_out, cancelled };

// What one limiter reports for health and metrics.
struct LimiterStats {
  std::size_t capacity = 0;
  std::size_t in_use = 0;
  std::size_t waiting = 0;
};

// A counting semaphore with FIFO-fair, deadline-bounded, cancellable waits.
// Built on a mutex and per-waiter condition variables rather than
// std::counting_semaphore: libstdc++ 12's version has lost-wakeup bugs (GCC
// PR 104928, PR 98033) and neither it nor a plain condition variable is fair.
// A released unit is handed directly to the oldest waiter, so a newcomer can
// never overtake a queued caller.
//
// Thread-safe. Must outlive every Permit it hands out.
class CapacityLimiter {
public:
  using Clock = std::chrono::steady_clock;

  // Throws Error(config_invalid) when capacity is 0.
  CapacityLimiter(std::string name, std::size_t capacity);
  ~CapacityLimiter() = default;
  CapacityLimiter(const CapacityLimiter&) = delete;
  CapacityLimiter& operator=(const CapacityLimiter&) = delete;
  CapacityLimiter(CapacityLimiter&&) = delete;
  CapacityLimiter& operator=(CapacityLimiter&&) = delete;

  // Takes one unit, queueing behind earlier waiters until `deadline`. Returns
  // nullopt with `status` timed_out when the deadline passes, or cancelled as
  // soon as `stop` is requested (also when it already was). Both are expected
  // outcomes, not errors; a failed wait leaves nothing held.
  [[nodiscard]] std::optional<Permit> acquire_until(Clock::time_point deadline,
                                                    const std::stop_token& stop,
                                                    AcquireStatus* status = nullptr);

  // Takes one unit only if one is free now and nobody is queued.
  [[nodiscard]] std::optional<Permit> try_acquire();

  LimiterStats stats() const;
  // True when nothing is held and nobody waits (safe to discard).
  bool idle() const;
  std::size_t capacity() const noexcept { return capacity_; }
  const std::string& name() const noexcept { return name_; }

private:
  friend class Permit;
  struct Waiter {
    std::condition_variable wake;
    bool granted = false;
  };

  void release() noexcept;

  const std::string name_;
  const std::size_t capacity_;
  mutable std::mutex mutex_;
  std::size_t in_use_ = 0;     // guarded by mutex_
  std::list<Waiter*> waiters_; // guarded by mutex_; oldest first
};

// Proof of holding one unit of a CapacityLimiter. Move-only; gives the unit
// back when destroyed or reset. A moved-from Permit holds nothing.
class Permit {
public:
  Permit(Permit&& other) noexcept
      : limiter_(std::exchange(other.limiter_, nullptr))
  {
  }
  Permit& operator=(Permit&& other) noexcept
  {
    if (this != &other) {
      reset();
      limiter_ = std::exchange(other.limiter_, nullptr);
    }
    return *this;
  }
  Permit(const Permit&) = delete;
  Permit& operator=(const Permit&) = delete;
  ~Permit() { reset(); }

  // Gives the unit back early. Idempotent.
  void reset() noexcept
  {
    if (limiter_ != nullptr) {
      std::exchange(limiter_, nullptr)->release();
    }
  }

  explicit operator bool() const noexcept { return limiter_ != nullptr; }

private:
  friend class CapacityLimiter;
  explicit Permit(CapacityLimiter& limiter) noexcept
      : limiter_(&limiter)
  {
  }

  CapacityLimiter* limiter_;
};

} // namespace exai::core
