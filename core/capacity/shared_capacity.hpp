#pragma once

#include "core/capacity/capacity.hpp"
#include "core/util/interface.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace exai::core {

// What a daemon does while the shared store is unreachable
// (EXAI_REDIS_FAILURE): `local` grants from local limits sized as a share of
// the shared limit; `refuse` grants nothing: waiting calls are refused at
// once (AcquireStatus::refused, OVER_CAPACITY) rather than at their deadline.
enum class SharedFailureMode { local, refuse };

// "local" | "refuse".
std::string_view failure_mode_name(SharedFailureMode mode) noexcept;

// The shared store did not answer (connection refused or lost, timeout).
// Thrown by SharedLeaseBackend implementations; never leaves SharedCapacity.
class SharedUnavailable : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

// A counting limiter kept by a store several daemons share (Redis, in
// net/redis). A permit is a lease: a member of the scope's set with an expiry
// the holder renews, so a daemon that dies strands nothing for longer than the
// lease TTL. Every operation is one atomic round trip. connect(), acquire()
// and renew() are called by SharedCapacity's worker, release() by its
// releaser thread, acquire_now() by call threads (at the same time:
// implementations keep a connection for each), listen() once. Every method
// may throw SharedUnavailable.
class SharedLeaseBackend : public Interface {
public:
  using Millis = std::chrono::milliseconds;

  struct Attempt {
    bool granted = false;
    // Not granted: when the oldest live lease expires (a retry is pointless
    // before unless a release is announced).
    Millis retry_in{0};
  };

  // (Re)connects and prepares the scripts. Throws SharedUnavailable, or
  // Error(config_invalid) when the store refuses our credentials.
  virtual void connect() = 0;
  // A lease wanted of scope `key`, granted while fewer than `limit` live.
  struct Want {
    std::string key;
    std::size_t limit = 0;
    std::string lease;
  };
  // A lease held of scope `key`.
  struct Held {
    std::string key;
    std::string lease;
  };

  // A value to store with a release batch (a call's replayable result).
  struct Write {
    std::string key;
    std::string value;
    Millis ttl{0};
  };
  struct Answer {
    std::vector<Attempt> attempts;
    std::optional<std::string> found; // the value under `lookup`, if asked and present
  };

  // Takes the leases of `wants` in order, in one round trip, stopping at the
  // first scope that is full: one Attempt per scope tried (all granted, or
  // the last one refused). A non-empty `lookup` is read in the same trip,
  // whatever the scopes answer.
  virtual Answer acquire(const std::vector<Want>& wants, Millis ttl, const std::string& lookup) = 0;
  // acquire() for a call's own thread, on a connection kept for that; nullopt
  // (nothing done) when another call's thread is using it.
  virtual std::optional<Answer>
  acquire_now(const std::vector<Want>& wants, Millis ttl, const std::string& lookup) = 0;
  // Drops `leases` and stores `writes` in one round trip, and announces each
  // release to every daemon's listener.
  virtual void release(const std::vector<Held>& leases, const std::vector<Write>& writes) = 0;
  // Extends `leases` of `key` to now + ttl. `re_add`: also adds those the
  // store lost (after it was unreachable); otherwise a lease that is gone
  // (released meanwhile by the releaser) stays gone.
  virtual void renew(const std::string& key,
                     const std::vector<std::string>& leases,
                     Millis ttl,
                     bool re_add) = 0;
  // Starts calling `on_release(key)` (on the backend's own thread) for every
  // announced release, and `on_release("")` when announcements may have been
  // missed (the subscription was re-established). Until stop_listening().
  virtual void listen(std::function<void(const std::string& key)> on_release) = 0;
  virtual void stop_listening() noexcept = 0;
};

struct SharedCapacityOptions {
  std::chrono::milliseconds lease_ttl{10000};
  SharedFailureMode failure = SharedFailureMode::local;
  double local_share = 0.5; // of each shared limit, while the store is unreachable
  std::string daemon_id;    // unique per process; every lease id starts with it
  std::string key_prefix = "exai:cap:";
  std::chrono::milliseconds retry_interval{1000}; // an unreachable store is tried again
  // Bytes of write_behind() values waiting for the releaser; past it new
  // writes are dropped (EXAI_REDIS_WRITE_QUEUE_MAX_BYTES).
  std::size_t write_queue_max_bytes = std::size_t{64} << 20U;
  // Bytes of values one release round trip carries at most (at least one
  // write), so a backlog never becomes one request Redis refuses.
  std::size_t write_batch_max_bytes = std::size_t{4} << 20U;
};

struct SharedCapacityStats {
  bool shared = true; // false: degraded (the store is unreachable)
  std::string reason; // why degraded
  SharedFailureMode failure = SharedFailureMode::local;
  std::chrono::milliseconds lease_ttl{0};
  std::uint64_t round_trips = 0;       // store operations (acquire, release, renew)
  std::uint64_t leases_acquired = 0;   // permits granted by the store
  std::uint64_t leases_prefetched = 0; // of those, taken on a call's thread (prefetch())
  std::uint64_t lease_renewals = 0;    // leases extended
  std::uint64_t fallbacks = 0;         // times the store became unreachable
  std::uint64_t fallback_permits = 0;  // permits granted from local shares
  std::size_t leases_held = 0;         // now
  std::size_t write_queue_bytes = 0;   // now: write_behind() values not yet sent
  std::uint64_t writes_dropped = 0;    // writes refused because the queue was full
};

// The global and provider scopes shared by several daemons (SPEC §9).
//
// Each scope is a gate, a PermitSource: waiters of this daemon queue FIFO in
// the gate; one worker thread asks the store for a lease for the oldest
// waiter, then the next, until the store says the scope is full; it tries
// again when any daemon announces a release (the backend's subscription) or
// when the oldest lease would expire — never by polling. When the waiter says
// which gate its call asks next (CapacityWaiter::then: global, then the
// provider) and that gate has nobody queued, both leases are asked for in the
// same round trip and the second is handed over when the call asks for it.
// The worker also renews every held lease each third of the TTL; a second
// thread, the releaser, gives back the leases of ended calls (all pending
// ones in one round trip), so an acquire never waits behind a release. A
// granted Permit is an ordinary local Permit: releasing it releases one lease
// of this daemon for the scope (leases of one scope are interchangeable).
//
// When the store fails, the gates grant from local limiters of
// ceil(limit x local_share) (mode local) or nothing (mode refuse), the store
// is tried again every retry_interval, and leases still held are re-added
// when it returns. Thread-safe. Must outlive every Permit its gates hand out.
class SharedCapacity {
public:
  using Clock = std::chrono::steady_clock;
  using OnLookup = std::function<void(std::optional<std::string>)>;

  // Leases taken ahead by prefetch(), parked on the thread that took them
  // until the gates' acquire_or_queue() on that same thread asks for them.
  // What was not asked for by the time it is destroyed goes back. Move-only;
  // destroyed on the thread that took it.
  class Prefetch {
  public:
    Prefetch() = default;
    Prefetch(Prefetch&&) noexcept = default;
    Prefetch& operator=(Prefetch&&) = delete;
    Prefetch(const Prefetch&) = delete;
    Prefetch& operator=(const Prefetch&) = delete;
    ~Prefetch();
    // A round trip was made (and the lookup, if any, answered).
    bool taken() const noexcept { return parked_ != nullptr; }
    struct Parked {
      std::array<const PermitSource*, 2> gates{};
      std::array<std::optional<Permit>, 2> permits;
    };

  private:
    friend class SharedCapacity;
    std::unique_ptr<Parked> parked_;
  };

  // Tries the store once; unreachable = start degraded. Lets
  // Error(config_invalid) from connect() through.
  SharedCapacity(SharedLeaseBackend& backend, SharedCapacityOptions options);
  ~SharedCapacity();
  SharedCapacity(const SharedCapacity&) = delete;
  SharedCapacity& operator=(const SharedCapacity&) = delete;

  // The gate of `scope` ("global", "provider:glm"), created on first use with
  // `limit` shared units (later calls return the same gate).
  PermitSource& gate(const std::string& scope, std::size_t limit);

  SharedCapacityStats stats() const;

  // Takes the leases of `first` (a gate of ours) and of `then` (null, or the
  // gate the call asks next) on this thread, in one round trip on the
  // backend's call connection, when nothing of this daemon is queued on
  // them, neither is known to be full, the store is reachable and the call
  // connection is free; otherwise does nothing (the gates' worker serves the
  // call as usual). For a thread that may block for one round trip (never
  // an event loop). When it takes them, `lookup` is read in the same trip and
  // `on_lookup` (then moved from) gets the value; the leases are parked for
  // this thread's next acquire_or_queue() on those gates.
  Prefetch
  prefetch(PermitSource& first, PermitSource* then, const std::string& lookup, OnLookup& on_lookup);

  // Stores `write` with the releaser's next batch (one round trip with the
  // releases); dropped while the store is unreachable or while the queue
  // holds write_queue_max_bytes (a slow store must not grow memory without
  // bound; the store is a cache, so a lost write costs a replay, not a call).
  void write_behind(SharedLeaseBackend::Write write);

private:
  class Gate;

  void run();
  void run_releases();
  void mark_locked(Gate* gate); // work for the worker; the caller notifies it
  void wake_locked(Gate* gate);
  void enqueue(Gate& gate, CapacityWaiter& waiter);
  bool withdraw(Gate& gate, CapacityWaiter& waiter) noexcept;
  void on_held_release(Gate& gate) noexcept;
  void on_local_release(Gate& gate) noexcept;
  void degrade(std::unique_lock<std::mutex>& lock, const std::string& reason);
  void pump(std::unique_lock<std::mutex>& lock, Gate& gate);
  Gate* prefetchable(PermitSource* next) const;
  std::string new_lease();
  void refuse_all(std::unique_lock<std::mutex>& lock, Gate& gate);
  void release_leases(std::unique_lock<std::mutex>& lock);
  void renew_leases(std::unique_lock<std::mutex>& lock, bool re_add);
  void try_rejoin(std::unique_lock<std::mutex>& lock);
  std::vector<std::function<void()>> full_notices(Gate& gate);

  SharedLeaseBackend& backend_;
  const SharedCapacityOptions options_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::condition_variable releases_; // the releaser's: to_release_ grew, or stopping
  std::map<std::string, std::unique_ptr<Gate>, std::less<>> gates_; // by store key; guarded
  bool stopping_ = false;                                           // guarded by mutex_
  bool work_ = false;                                               // guarded by mutex_
  bool degraded_ = false;                                           // guarded by mutex_
  std::string reason_;                                              // guarded by mutex_
  Clock::time_point retry_at_;                                      // guarded by mutex_
  Clock::time_point renew_at_;                                      // guarded by mutex_
  std::uint64_t next_lease_ = 0;                                    // guarded by mutex_
  std::deque<SharedLeaseBackend::Write> writes_;                    // guarded by mutex_
  std::size_t write_bytes_ = 0; // guarded by mutex_: bytes of writes_
  std::atomic<std::uint64_t> writes_dropped_{0};
  std::atomic<std::uint64_t> round_trips_{0};
  std::atomic<std::uint64_t> leases_acquired_{0};
  std::atomic<std::uint64_t> leases_prefetched_{0};
  std::atomic<std::uint64_t> renewals_{0};
  std::atomic<std::uint64_t> fallbacks_{0};
  std::atomic<std::uint64_t> fallback_permits_{0};
  std::thread worker_;
  std::thread releaser_;
};

} // namespace exai::core
