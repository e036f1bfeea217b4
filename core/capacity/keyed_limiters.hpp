#pragma once

#include "core/capacity/capacity.hpp"

#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

namespace exai::core {

// Limiters created on demand per key (one per session, one per conversation)
// and removed as soon as nobody uses them. Every holder and every waiter owns
// a Lease, so "no lease" means "no permit and no waiter": removal can never
// strand a permit, and the map never outgrows the live keys.
//
// Thread-safe. Must outlive every Lease.
class KeyedLimiters {
  struct Entry;

public:
  // A claim on the limiter for one key; keeps it alive. Move-only.
  class Lease {
  public:
    Lease(Lease&& other) noexcept
        : owner_(std::exchange(other.owner_, nullptr))
        , entry_(std::exchange(other.entry_, nullptr))
    {
    }
    Lease& operator=(Lease&& other) noexcept;
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease() { reset(); }

    // Drops the claim (removing the limiter if it was the last). Idempotent.
    void reset() noexcept;
    // The leased limiter. Precondition: the lease is not moved-from.
    CapacityLimiter& limiter() const noexcept;

  private:
    friend class KeyedLimiters;
    Lease(KeyedLimiters& owner, Entry& entry) noexcept
        : owner_(&owner)
        , entry_(&entry)
    {
    }
    KeyedLimiters* owner_;
    Entry* entry_;
  };

  // `scope` names the limiters ("session", "conversation"); each gets
  // `capacity_each` units. Throws Error(config_invalid) when it is 0.
  KeyedLimiters(std::string scope, std::size_t capacity_each);
  ~KeyedLimiters();
  KeyedLimiters(const KeyedLimiters&) = delete;
  KeyedLimiters& operator=(const KeyedLimiters&) = delete;

  // The limiter for `key`, created if absent.
  [[nodiscard]] Lease lease(const std::string& key);

  // Number of live limiters.
  std::size_t size() const;
  // Sums over live limiters (capacity = live limiters x capacity_each).
  LimiterStats totals() const;
  std::size_t capacity_each() const noexcept { return capacity_each_; }

private:
  void release(Entry& entry) noexcept;

  const std::string scope_;
  const std::size_t capacity_each_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, std::unique_ptr<Entry>> entries_; // guarded by mutex_
};

} // namespace exai::core
