#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace exai::core {

// Request id -> entry for calls in flight. Entries go in and out only through
// a Ticket: whoever runs the call owns the ticket, and the entry disappears
// when the ticket does, on every path (the Python daemon's set grew forever).
//
// Thread-safe. Must outlive every Ticket.
template <typename T> class InflightRegistry {
public:
  // Ownership of one registry entry. Move-only; erases it on destruction.
  class Ticket {
  public:
    Ticket(Ticket&& other) noexcept
        : owner_(std::exchange(other.owner_, nullptr))
        , key_(std::move(other.key_))
    {
    }
    Ticket& operator=(Ticket&& other) noexcept
    {
      if (this != &other) {
        reset();
        owner_ = std::exchange(other.owner_, nullptr);
        key_ = std::move(other.key_);
      }
      return *this;
    }
    Ticket(const Ticket&) = delete;
    Ticket& operator=(const Ticket&) = delete;
    ~Ticket() { reset(); }

    // Removes the entry now. Idempotent.
    void reset() noexcept
    {
      if (owner_ != nullptr) {
        std::exchange(owner_, nullptr)->erase(key_);
      }
    }
    const std::string& key() const noexcept { return key_; }

  private:
    friend class InflightRegistry;
    Ticket(InflightRegistry& owner, std::string key)
        : owner_(&owner)
        , key_(std::move(key))
    {
    }
    InflightRegistry* owner_;
    std::string key_;
  };

  InflightRegistry() = default;
  ~InflightRegistry() = default;
  InflightRegistry(const InflightRegistry&) = delete;
  InflightRegistry& operator=(const InflightRegistry&) = delete;

  // Registers `value` under `key`. Returns nullopt when `key` is already in
  // flight (a duplicate); the registry is then unchanged.
  [[nodiscard]] std::optional<Ticket> insert(std::string key, std::shared_ptr<T> value)
  {
    const std::lock_guard lock(mutex_);
    if (!entries_.emplace(key, std::move(value)).second) {
      return std::nullopt;
    }
    return Ticket(*this, std::move(key));
  }

  // The entry for `key`, or null when none is in flight.
  std::shared_ptr<T> find(const std::string& key) const
  {
    const std::lock_guard lock(mutex_);
    const auto it = entries_.find(key);
    return it == entries_.end() ? nullptr : it->second;
  }

  // A snapshot of every entry (for shutdown and diagnostics).
  std::vector<std::shared_ptr<T>> all() const
  {
    const std::lock_guard lock(mutex_);
    std::vector<std::shared_ptr<T>> out;
    out.reserve(entries_.size());
    for (const auto& [key, value] : entries_) {
      out.push_back(value);
    }
    return out;
  }

  std::size_t size() const
  {
    const std::lock_guard lock(mutex_);
    return entries_.size();
  }

private:
  void erase(const std::string& key) noexcept
  {
    const std::lock_guard lock(mutex_);
    entries_.erase(key);
  }

  mutable std::mutex mutex_;
  std::unordered_map<std::string, std::shared_ptr<T>> entries_; // guarded by mutex_
};

} // namespace exai::core
