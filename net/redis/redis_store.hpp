#pragma once

#include "core/calls/shared_store.hpp"
#include "core/config/redis_url.hpp"
#include "net/redis/redis_connection.hpp"

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <vector>

namespace exai::net {

// Conversations and results in Redis (core::SharedStore): GET and SET PX on
// a small pool of connections (one per concurrent caller, kept for reuse).
// After a failure the store reads as empty and drops writes for a second
// instead of waiting on Redis each time; the local copies still answer.
class RedisStore final : public core::SharedStore {
public:
  RedisStore(const core::RedisUrl& url, std::chrono::milliseconds timeout);

  std::optional<std::string> get(const std::string& key) override;
  void
  put(const std::string& key, const std::string& value, std::chrono::milliseconds ttl) override;

  std::uint64_t round_trips() const noexcept override { return round_trips_.load(); }

private:
  using Clock = std::chrono::steady_clock;
  std::unique_ptr<RedisConnection> take();
  void give_back(std::unique_ptr<RedisConnection> connection, bool failed);

  const core::RedisUrl url_;
  const std::chrono::milliseconds timeout_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<RedisConnection>> idle_; // guarded by mutex_
  Clock::time_point down_until_;                       // guarded by mutex_
  std::atomic<std::uint64_t> round_trips_{0};
};

} // namespace exai::net
