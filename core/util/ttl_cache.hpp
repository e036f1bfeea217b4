#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>

namespace exai::core {

// Finished results kept for a while: replay by request_id and reuse of
// identical calls. Bounded twice: entries expire `ttl` after they were put,
// and beyond `max_entries` the oldest is dropped. Expired entries are purged
// on every access, so the store never grows past the live set.
//
// Thread-safe. The clock is injectable for tests.
template <typename V> class TtlCache {
public:
  using Clock = std::chrono::steady_clock;
  using Now = std::function<Clock::time_point()>;

  TtlCache(std::chrono::milliseconds ttl, std::size_t max_entries, Now now = Clock::now)
      : ttl_(ttl)
      , max_entries_(max_entries)
      , now_(std::move(now))
  {
  }

  // Stores `value` under `key` (replacing any older one) until now + ttl.
  void put(const std::string& key, V value)
  {
    const std::lock_guard lock(mutex_);
    const auto now = now_();
    purge_locked(now);
    if (ttl_.count() <= 0 || max_entries_ == 0) {
      return;
    }
    if (const auto it = index_.find(key); it != index_.end()) {
      order_.erase(it->second);
      index_.erase(it);
    }
    order_.push_back(Item{key, std::move(value), now + ttl_});
    index_.emplace(key, std::prev(order_.end()));
    while (order_.size() > max_entries_) {
      index_.erase(order_.front().key);
      order_.pop_front();
    }
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

  // Number of live entries (after purging expired ones).
  std::size_t size() const
  {
    const std::lock_guard lock(mutex_);
    purge_locked(now_());
    return order_.size();
  }

private:
  struct Item {
    std::string key;
    V value;
    Clock::time_point expires;
  };

  // Items are in insertion order and share one ttl, so they expire in order.
  void purge_locked(Clock::time_point now) const
  {
    while (!order_.empty() && order_.front().expires <= now) {
      index_.erase(order_.front().key);
      order_.pop_front();
    }
  }

  const std::chrono::milliseconds ttl_;
  const std::size_t max_entries_;
  const Now now_;
  // Mutable: purging expired entries is not an observable change.
  mutable std::mutex mutex_;
  mutable std::list<Item> order_; // guarded by mutex_; oldest first
  mutable std::unordered_map<std::string, typename std::list<Item>::iterator>
      index_; // guarded by mutex_
};

} // namespace exai::core
