#include "core/capacity/keyed_limiters.hpp"

#include "core/error.hpp"

namespace exai::core {

struct KeyedLimiters::Entry {
  Entry(const std::string& scope, const std::string& name, std::size_t capacity)
      : key(name)
      , limiter(scope + ":" + name, capacity)
  {
  }
  const std::string key;
  CapacityLimiter limiter;
  std::size_t users = 0; // guarded by the owner's mutex_
};

KeyedLimiters::Lease&
KeyedLimiters::Lease::operator=(Lease&& other) noexcept
{
  if (this != &other) {
    reset();
    owner_ = std::exchange(other.owner_, nullptr);
    entry_ = std::exchange(other.entry_, nullptr);
  }
  return *this;
}

void
KeyedLimiters::Lease::reset() noexcept
{
  if (owner_ != nullptr) {
    std::exchange(owner_, nullptr)->release(*std::exchange(entry_, nullptr));
  }
}

CapacityLimiter&
KeyedLimiters::Lease::limiter() const noexcept
{
  return entry_->limiter;
}

KeyedLimiters::KeyedLimiters(std::string scope, std::size_t capacity_each)
    : scope_(std::move(scope))
    , capacity_each_(capacity_each)
{
  if (capacity_each_ == 0) {
    throw Error(Errc::config_invalid, "capacity of '" + scope_ + "' must be at least 1");
  }
}

KeyedLimiters::~KeyedLimiters() = default;

KeyedLimiters::Lease
KeyedLimiters::lease(const std::string& key)
{
  const std::lock_guard lock(mutex_);
  auto& slot = entries_[key];
  if (!slot) {
    slot = std::make_unique<Entry>(scope_, key, capacity_each_);
  }
  ++slot->users;
  return Lease(*this, *slot);
}

void
KeyedLimiters::release(Entry& entry) noexcept
{
  const std::lock_guard lock(mutex_);
  if (--entry.users == 0) {
    // Erase by iterator: erasing by `entry.key` would compare against a key
    // that the erase itself destroys.
    entries_.erase(entries_.find(entry.key));
  }
}

std::size_t
KeyedLimiters::size() const
{
  const std::lock_guard lock(mutex_);
  return entries_.size();
}

LimiterStats
KeyedLimiters::totals() const
{
  const std::lock_guard lock(mutex_);
  LimiterStats total;
  for (const auto& [key, entry] : entries_) {
    const LimiterStats one = entry->limiter.stats();
    total.capacity += one.capacity;
    total.in_use += one.in_use;
    total.waiting += one.waiting;
  }
  return total;
}

} // namespace exai::core
