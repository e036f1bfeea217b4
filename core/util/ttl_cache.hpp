#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <limits>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>

namespace exai::core {

// Values kept for a while (replayable results, reusable answers,
// conversations). Bounded three ways: entries expire `ttl` after they were
// put, and beyond `max_entries` or `max_bytes` (as measured by the weigher)
// the oldest go first. A value heavier than `max_bytes` on its own is not
// stored at all. Expired entries are purged on every access, so the store
// never holds more than the live set.
//
// Thread-safe. The clock is injectable for tests.
template <typename V> class TtlCache {
public:
  using Clock = std::chrono::steady_clock;
  using Now = std::function<Clock::time_point()>;
  using Weigher = std::function<std::size_t(const std::string& key, const V& value)>;

  TtlCache(std::chrono::milliseconds ttl, std::size_t max_entries, Now now = Clock::now)
      : TtlCache(ttl, max_entries, std::numeric_limits<std::size_t>::max(), {}, std::move(now))
  {
  }

  TtlCache(std::chrono::milliseconds ttl,
           std::size_t max_entries,
           std::size_t max_bytes,
           Weigher weigh,
           Now now = Clock::now)
      : ttl_(ttl)
      , max_entries_(max_entries)
      , max_bytes_(max_bytes)
      , weigh_(std::move(weigh))
      , now_(std::move(now))
  {
  }

  // Stores `value` under `key` (replacing any older one) until now + ttl.
  // False when it was not stored (ttl or bounds of zero, or heavier than
  // max_bytes on its own); an older value under `key` is then gone too.
  bool put(const std::string& key, V value)
  {
    const std::lock_guard lock(mutex_);
    const auto now = now_();
    purge_locked(now);
    erase_locked(key);
    const std::size_t weight = weigh_ ? weigh_(key, value) : 0;
    if (ttl_.count() <= 0 || max_entries_ == 0 || weight > max_bytes_) {
      return false;
    }
    order_.push_back(Item{key, std::move(value), now + ttl_, weight});
    index_.emplace(key, std::prev(order_.end()));
    bytes_ += weight;
    while (order_.size() > max_entries_ || bytes_ > max_bytes_) {
      pop_oldest_locked();
    }
    return true;
  }

  // The value for `key` if present and not expired.
  std::optional<V> get(const std::string& key)
  {
    const std::lock_guard lock(mutex_);
    purge_locked(now_());
    const auto it = index_.find(key);
    if (it == index_.end()) {
      return std::nullopt;
    }
    return it->second->value;
  }

  // Removes `key`; true when it was there.
  bool erase(const std::string& key)
  {
    const std::lock_guard lock(mutex_);
    return erase_locked(key);
  }

  // Drops expired entries now. Returns the bytes they weighed.
  std::size_t purge()
  {
    const std::lock_guard lock(mutex_);
    const std::size_t before = bytes_;
    purge_locked(now_());
    return before - bytes_;
  }

  // Number of live entries (after purging expired ones).
  std::size_t size() const
  {
    const std::lock_guard lock(mutex_);
    purge_locked(now_());
    return order_.size();
  }

  // Total weight of the live entries.
  std::size_t bytes() const
  {
    const std::lock_guard lock(mutex_);
    purge_locked(now_());
    return bytes_;
  }

  std::size_t max_bytes() const noexcept { return max_bytes_; }

  // Bytes dropped (expired, evicted, replaced or erased) since the last call:
  // whoever returns memory to the OS decides from this.
  std::size_t take_freed()
  {
    const std::lock_guard lock(mutex_);
    return std::exchange(freed_, 0);
  }

private:
  struct Item {
    std::string key;
    V value;
    Clock::time_point expires;
    std::size_t weight;
  };

  void pop_oldest_locked() const
  {
    bytes_ -= order_.front().weight;
    freed_ += order_.front().weight;
    index_.erase(order_.front().key);
    order_.pop_front();
  }

  bool erase_locked(const std::string& key) const
  {
    const auto it = index_.find(key);
    if (it == index_.end()) {
      return false;
    }
    bytes_ -= it->second->weight;
    freed_ += it->second->weight;
    order_.erase(it->second);
    index_.erase(it);
    return true;
  }

  // Items are in insertion order and share one ttl, so they expire in order.
  void purge_locked(Clock::time_point now) const
  {
    while (!order_.empty() && order_.front().expires <= now) {
      pop_oldest_locked();
    }
  }

  const std::chrono::milliseconds ttl_;
  const std::size_t max_entries_;
  const std::size_t max_bytes_;
  const Weigher weigh_;
  const Now now_;
  // Mutable: purging expired entries is not an observable change.
  mutable std::mutex mutex_;
  mutable std::list<Item> order_; // guarded by mutex_; oldest first
  mutable std::unordered_map<std::string, typename std::list<Item>::iterator>
      index_;                     // guarded by mutex_
  mutable std::size_t bytes_ = 0; // guarded by mutex_
  mutable std::size_t freed_ = 0; // guarded by mutex_
};

} // namespace exai::core
