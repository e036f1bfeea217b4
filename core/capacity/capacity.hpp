#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <utility>

namespace exai::core {

class Permit;
class PermitSource;

// How a blocking acquisition ended when it did not yield a permit.
// refused: the source will not grant now at all (a shared scope whose store is
// unreachable under EXAI_REDIS_FAILURE=refuse), so waiting is pointless.
enum class AcquireStatus { acquired, timed_out, cancelled, refused };

// What one limiter reports for health and metrics.
struct LimiterStats {
  std::size_t capacity = 0;
  std::size_t in_use = 0;
  std::size_t waiting = 0;
};

// A queued claim on one unit of a PermitSource. The grant callback runs at
// most once, on the thread that released (or obtained) the unit, without any
// limiter lock held; it must be quick and must not block (post the
// continuation elsewhere). `on_full`, when set, is called by sources that
// answer asynchronously (SharedCapacity) once they know the claim has to wait,
// and `on_refused` (instead of any grant, the claim no longer queued) by those
// that will not grant at all for now.
class CapacityWaiter {
public:
  using Grant = std::function<void(Permit permit)>;
  explicit CapacityWaiter(Grant grant,
                          std::function<void()> on_full = {},
                          std::function<void()> on_refused = {})
      : grant_(std::move(grant))
      , on_full_(std::move(on_full))
      , on_refused_(std::move(on_refused))
  {
  }

  // The source this claim's call asks next once granted. A hint: a shared
  // source may take both leases in one round trip and hand the second over
  // when the call asks for it (synchronously, from within the grant).
  void then(PermitSource* next) noexcept { then_ = next; }

  // Asks a shared source to read `key` from its store in the round trip that
  // asks for this claim's lease; `on_answer` gets the value (nullopt: absent,
  // or not read). Called once, before the claim is granted, on any thread.
  void look_up(std::string key, std::function<void(std::optional<std::string>)> on_answer)
  {
    lookup_key_ = std::move(key);
    on_lookup_ = std::move(on_answer);
  }

private:
  friend class CapacityLimiter;
  friend class SharedCapacity;
  Grant grant_;
  std::function<void()> on_full_;
  std::function<void()> on_refused_;
  PermitSource* then_ = nullptr;
  std::string lookup_key_;                                    // guarded by the source's mutex
  std::function<void(std::optional<std::string>)> on_lookup_; // guarded likewise; once
  bool queued_ = false;                                       // guarded by the source's mutex
  bool told_full_ = false;                                    // guarded by the source's mutex
  std::list<CapacityWaiter*>::iterator position_;
};

// Where permits of one scope come from: a local CapacityLimiter, or a scope
// shared by several daemons (SharedCapacity). Thread-safe.
class PermitSource {
public:
  using Clock = std::chrono::steady_clock;
  using Waiter = CapacityWaiter;

  PermitSource() = default;
  PermitSource(const PermitSource&) = delete;
  PermitSource& operator=(const PermitSource&) = delete;
  virtual ~PermitSource() = default;

  // Takes one unit at once when that is possible without waiting; otherwise
  // queues `waiter` (which must stay alive until granted or withdrawn) and
  // returns nullopt.
  [[nodiscard]] virtual std::optional<Permit> acquire_or_queue(Waiter& waiter) = 0;

  // Removes a queued waiter. True when it was still queued: its callback will
  // never run. False when it was not queued (already granted, or never).
  virtual bool withdraw(Waiter& waiter) noexcept = 0;

  // True when acquire_or_queue() queues before it knows whether the scope is
  // full (the answer comes from elsewhere); the waiter's on_full says so.
  virtual bool answers_later() const noexcept { return false; }

  virtual LimiterStats stats() const = 0;

  // Blocking form: takes one unit, queueing behind earlier waiters until
  // `deadline`. Returns nullopt with `status` timed_out when the deadline
  // passes, or cancelled as soon as `stop` is requested (also when it already
  // was). A failed wait leaves nothing held.
  [[nodiscard]] std::optional<Permit> acquire_until(Clock::time_point deadline,
                                                    const std::stop_token& stop,
                                                    AcquireStatus* status = nullptr);
};

// A counting semaphore with FIFO-fair waits that hold no thread.
//
// A caller that finds the limiter full queues a Waiter and goes on with its
// life; when a unit is released it is handed straight to the oldest waiter,
// whose grant callback receives the Permit on the releasing thread, so a
// newcomer can never overtake a queued caller. A waiter is withdrawn (timeout,
// cancellation) under the same lock as a grant, so exactly one of the two
// happens. acquire_until() is the blocking form on top of the same queue.
//
// Built on a mutex rather than std::counting_semaphore: libstdc++ 12's version
// has lost-wakeup bugs (GCC PR 104928, PR 98033) and is not fair.
//
// Thread-safe. Must outlive every Permit it hands out and every queued Waiter.
class CapacityLimiter final : public PermitSource {
public:
  using Clock = std::chrono::steady_clock;

  // Throws Error(config_invalid) when capacity is 0.
  CapacityLimiter(std::string name, std::size_t capacity);
  ~CapacityLimiter() override = default;
  CapacityLimiter(const CapacityLimiter&) = delete;
  CapacityLimiter& operator=(const CapacityLimiter&) = delete;

  // Takes one unit if one is free and nobody is queued; otherwise queues
  // `waiter` and returns nullopt.
  [[nodiscard]] std::optional<Permit> acquire_or_queue(Waiter& waiter) override;
  bool withdraw(Waiter& waiter) noexcept override;

  // Takes one unit only if one is free now and nobody is queued.
  [[nodiscard]] std::optional<Permit> try_acquire();

  // Called on the releasing thread, without the lock, each time a unit is
  // released to nobody (no waiter queued). Set before the first permit.
  void set_on_release(std::function<void()> on_release) { on_release_ = std::move(on_release); }

  LimiterStats stats() const override;
  // True when nothing is held and nobody waits (safe to discard).
  bool idle() const;
  std::size_t capacity() const noexcept { return capacity_; }
  const std::string& name() const noexcept { return name_; }

private:
  friend class Permit;

  void release() noexcept;

  const std::string name_;
  const std::size_t capacity_;
  mutable std::mutex mutex_;
  std::size_t in_use_ = 0;     // guarded by mutex_
  std::list<Waiter*> waiters_; // guarded by mutex_; oldest first
  std::function<void()> on_release_;
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
