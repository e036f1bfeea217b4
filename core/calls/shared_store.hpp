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

// store.get(key), with a failure of any kind read as "absent" (and logged):
// a store that fails is a store without that value, so a call asking it is
// answered from what this daemon has, never left waiting.
std::optional<std::string> get_or_nothing(SharedStore& store, const std::string& key) noexcept;

} // namespace exai::core
