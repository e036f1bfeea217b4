#pragma once

#include "core/util/interface.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace exai::core {

// A key-value store several daemons share (Redis, in net/redis), where
// conversation threads and replayable results live with their TTL when
// EXAI_REDIS_URL is set. Best effort: an unreachable store reads as absent and
// drops writes (the local copy still answers). Thread-safe.
class SharedStore : public Interface {
public:
  // The value of `key`, or nullopt when absent, expired or unreachable.
  virtual std::optional<std::string> get(const std::string& key) = 0;
  // Stores `value` under `key` for `ttl`.
  virtual void
  put(const std::string& key, const std::string& value, std::chrono::milliseconds ttl) = 0;
  // Round trips to the store so far (for metrics).
  virtual std::uint64_t round_trips() const noexcept = 0;
};

} // namespace exai::core
