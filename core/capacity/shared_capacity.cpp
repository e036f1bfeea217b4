#include "core/capacity/shared_capacity.hpp"

#include "core/log.hpp"
#include "core/util/enum_names.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <list>

namespace exai::core {

std::string_view
failure_mode_name(SharedFailureMode mode) noexcept
{
  static constexpr EnumNames<SharedFailureMode, 2> kNames{{"local", "refuse"}, "local"};
  return kNames(mode);
}

namespace {

// What a write costs the queue and a batch: its key and value.
std::size_t
write_size(const SharedLeaseBackend::Write& write) noexcept
{
  return write.key.size() + write.value.size();
}

std::size_t
local_share_of(std::size_t limit, double share)
{
  const auto units = static_cast<std::size_t>(std::ceil(static_cast<double>(limit) * share));
  return std::clamp<std::size_t>(units, 1, limit);
}

// Leases parked on this thread for the gates' next acquire_or_queue() here:
// a call thread's prefetch(), or the worker's second lease of a grant that
// took two (the call asks that gate next, from within the grant callback).
thread_local SharedCapacity::Prefetch::Parked* t_parked = nullptr;

std::optional<Permit>
take_parked(const PermitSource* gate)
{
  if (t_parked != nullptr) {
    for (std::size_t i = 0; i < t_parked->gates.size(); ++i) {
      if (t_parked->gates.at(i) == gate && t_parked->permits.at(i).has_value()) {
        std::optional<Permit> permit = std::move(t_parked->permits.at(i));
        t_parked->permits.at(i).reset();
        return permit;
      }
    }
  }
  return std::nullopt;
}

} // namespace

SharedCapacity::Prefetch::~Prefetch()
{
  if (parked_ != nullptr && t_parked == parked_.get()) {
    t_parked = nullptr;
  }
  // parked_ goes now: permits not asked for give their leases back.
}

// One shared scope. Its queue and lease ids are guarded by the owner's mutex.
class SharedCapacity::Gate final : public PermitSource {
public:
  Gate(SharedCapacity& owner, std::string scope, std::string key, std::size_t limit, double share)
      : owner_(owner)
      , scope_(std::move(scope))
      , key_(std::move(key))
      , limit_(limit)
      , held_("shared:" + scope_, limit)
      , local_("local-share:" + scope_, local_share_of(limit, share))
  {
    held_.set_on_release([this] { owner_.on_held_release(*this); });
    local_.set_on_release([this] { owner_.on_local_release(*this); });
  }

  std::optional<Permit> acquire_or_queue(Waiter& waiter) override
  {
    if (auto permit = take_parked(this)) {
      return permit;
    }
    owner_.enqueue(*this, waiter);
    return std::nullopt;
  }
  bool withdraw(Waiter& waiter) noexcept override { return owner_.withdraw(*this, waiter); }
  bool answers_later() const noexcept override { return true; }

  LimiterStats stats() const override
  {
    const LimiterStats held = held_.stats();
    const LimiterStats local = local_.stats();
    const std::lock_guard lock(owner_.mutex_);
    return {limit_, held.in_use + local.in_use, waiters_.size()};
  }

  SharedCapacity& owner_;
  const std::string scope_;
  const std::string key_;
  const std::size_t limit_;
  CapacityLimiter held_;                // one unit per lease held in the store
  CapacityLimiter local_;               // the local share while the store is unreachable
  std::list<CapacityWaiter*> waiters_;  // guarded by owner_.mutex_; oldest first
  std::vector<std::string> leases_;     // guarded: held in the store
  std::vector<std::string> to_release_; // guarded: released by calls, not yet by the store
  bool dirty_ = false;                  // guarded: waiters may be granted now
  Clock::time_point retry_at_ = Clock::time_point::max(); // guarded: full until then
};

SharedCapacity::SharedCapacity(SharedLeaseBackend& backend, SharedCapacityOptions options)
    : backend_(backend)
    , options_(std::move(options))
{
  try {
    backend_.connect();
  } catch (const SharedUnavailable& e) {
    std::unique_lock lock(mutex_);
    degrade(lock, e.what());
  }
  renew_at_ = Clock::now() + options_.lease_ttl / 3;
  backend_.listen([this](const std::string& key) {
    {
      const std::lock_guard lock(mutex_);
      if (key.empty()) {
        mark_locked(nullptr);
      } else if (const auto it = gates_.find(key);
                 it != gates_.end() && !it->second->waiters_.empty()) {
        mark_locked(it->second.get());
      } else {
        return; // nobody here waits for that scope: most announcements, our own included
      }
    }
    changed_.notify_all();
  });
  worker_ = std::thread([this] { run(); });
  releaser_ = std::thread([this] { run_releases(); });
}

SharedCapacity::~SharedCapacity()
{
  backend_.stop_listening();
  {
    const std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  releases_.notify_all();
  worker_.join();
  releaser_.join(); // after giving back what is left
}

PermitSource&
SharedCapacity::gate(const std::string& scope, std::size_t limit)
{
  const std::lock_guard lock(mutex_);
  std::string key = options_.key_prefix + scope;
  auto it = gates_.find(key);
  if (it == gates_.end()) {
    auto gate = std::make_unique<Gate>(*this, scope, key, limit, options_.local_share);
    it = gates_.emplace(std::move(key), std::move(gate)).first;
  }
  return *it->second;
}

SharedCapacityStats
SharedCapacity::stats() const
{
  SharedCapacityStats s;
  {
    const std::lock_guard lock(mutex_);
    s.shared = !degraded_;
    s.reason = reason_;
    s.write_queue_bytes = write_bytes_;
    for (const auto& [key, gate] : gates_) {
      s.leases_held += gate->leases_.size();
    }
  }
  s.failure = options_.failure;
  s.lease_ttl = options_.lease_ttl;
  s.round_trips = round_trips_.load();
  s.writes_dropped = writes_dropped_.load();
  s.leases_acquired = leases_acquired_.load();
  s.leases_prefetched = leases_prefetched_.load();
  s.lease_renewals = renewals_.load();
  s.fallbacks = fallbacks_.load();
  s.fallback_permits = fallback_permits_.load();
  return s;
}

void
SharedCapacity::write_behind(SharedLeaseBackend::Write write)
{
  const std::lock_guard lock(mutex_);
  if (degraded_) {
    return;
  }
  const std::size_t size = write_size(write);
  if (write_bytes_ + size > options_.write_queue_max_bytes) {
    if (writes_dropped_++ == 0) {
      log::get("core")->warn("redis write dropped key={} bytes={}: {} bytes already wait to be "
                             "written (EXAI_REDIS_WRITE_QUEUE_MAX_BYTES={}); further drops are "
                             "counted in health",
                             write.key,
                             size,
                             write_bytes_,
                             options_.write_queue_max_bytes);
    }
    return;
  }
  write_bytes_ += size;
  writes_.push_back(std::move(write));
  releases_.notify_one();
}

void
SharedCapacity::mark_locked(Gate* gate)
{
  if (gate == nullptr) {
    for (auto& [key, each] : gates_) {
      each->dirty_ = true;
    }
  } else {
    gate->dirty_ = true;
  }
  work_ = true;
}

void
SharedCapacity::wake_locked(Gate* gate)
{
  mark_locked(gate);
  changed_.notify_all();
}

void
SharedCapacity::enqueue(Gate& gate, CapacityWaiter& waiter)
{
  {
    const std::lock_guard lock(mutex_);
    waiter.position_ = gate.waiters_.insert(gate.waiters_.end(), &waiter);
    waiter.queued_ = true;
    waiter.told_full_ = false;
    mark_locked(&gate);
  }
  // After unlocking: a worker woken under the lock would only block on it.
  changed_.notify_all();
}

bool
SharedCapacity::withdraw(Gate& gate, CapacityWaiter& waiter) noexcept
{
  const std::lock_guard lock(mutex_);
  if (!waiter.queued_) {
    return false;
  }
  gate.waiters_.erase(waiter.position_);
  waiter.queued_ = false;
  return true;
}

void
SharedCapacity::on_held_release(Gate& gate) noexcept
{
  const std::lock_guard lock(mutex_);
  if (!gate.leases_.empty()) {
    gate.to_release_.push_back(std::move(gate.leases_.back()));
    gate.leases_.pop_back();
    releases_.notify_one();
  }
  // Not the worker: our own release announcement wakes it once the lease is
  // back in the store (or the local share, while degraded, is pumped below).
  if (degraded_) {
    wake_locked(&gate);
  }
}

void
SharedCapacity::on_local_release(Gate& gate) noexcept
{
  const std::lock_guard lock(mutex_);
  wake_locked(&gate);
}

void
SharedCapacity::degrade(std::unique_lock<std::mutex>& /*lock*/, const std::string& reason)
{
  if (degraded_) {
    return;
  }
  degraded_ = true;
  reason_ = "redis unreachable: " + reason;
  ++fallbacks_;
  retry_at_ = Clock::now() + options_.retry_interval;
  if (options_.failure == SharedFailureMode::local) {
    log::get("core")->warn("shared capacity degraded reason=\"{}\" fallback=local share={}",
                           reason,
                           options_.local_share);
  } else {
    log::get("core")->warn("shared capacity degraded reason=\"{}\" fallback=refuse", reason);
  }
  wake_locked(nullptr);
}

std::vector<std::function<void()>>
SharedCapacity::full_notices(Gate& gate)
{
  std::vector<std::function<void()>> notices;
  for (CapacityWaiter* waiter : gate.waiters_) {
    if (!waiter->told_full_) {
      waiter->told_full_ = true;
      if (waiter->on_full_) {
        notices.push_back(waiter->on_full_);
      }
    }
  }
  return notices;
}

SharedCapacity::Gate*
SharedCapacity::prefetchable(PermitSource* source) const
{
  auto* next = dynamic_cast<Gate*>(source);
  // Only a gate with nobody queued and not known to be full: a lease taken
  // there must not overtake its own waiters.
  if (next == nullptr || &next->owner_ != this || !next->waiters_.empty() ||
      next->retry_at_ != Clock::time_point::max()) {
    return nullptr;
  }
  return next;
}

SharedCapacity::Prefetch
SharedCapacity::prefetch(PermitSource& first_source,
                         PermitSource* then_source,
                         const std::string& lookup,
                         OnLookup& on_lookup)
{
  Prefetch out;
  std::vector<SharedLeaseBackend::Want> wants;
  std::array<Gate*, 2> gates{};
  {
    const std::lock_guard lock(mutex_);
    gates[0] = prefetchable(&first_source);
    if (gates[0] == nullptr || degraded_ || stopping_) {
      return out;
    }
    gates[1] = prefetchable(then_source);
    for (Gate* gate : gates) {
      if (gate != nullptr) {
        wants.push_back({gate->key_, gate->limit_, new_lease()});
      }
    }
  }
  std::optional<SharedLeaseBackend::Answer> answer;
  try {
    answer = backend_.acquire_now(wants, options_.lease_ttl, on_lookup ? lookup : std::string());
  } catch (const std::exception& e) {
    std::unique_lock lock(mutex_);
    degrade(lock, e.what());
    return out; // the gates answer from the fallback
  }
  if (!answer) {
    return out; // the call connection is busy: the worker serves this call
  }
  ++round_trips_;
  if (on_lookup) {
    std::exchange(on_lookup, nullptr)(std::move(answer->found));
  }
  out.parked_ = std::make_unique<Prefetch::Parked>();
  const std::lock_guard lock(mutex_);
  for (std::size_t i = 0; i < answer->attempts.size() && i < wants.size(); ++i) {
    if (!answer->attempts[i].granted) {
      break; // the gate asks the store again when the call queues there
    }
    ++leases_acquired_;
    ++leases_prefetched_;
    Gate& gate = *gates.at(i);
    if (auto permit = gate.held_.try_acquire()) {
      gate.leases_.push_back(std::move(wants[i].lease));
      out.parked_->gates.at(i) = &gate;
      out.parked_->permits.at(i) = std::move(permit);
    } else {
      gate.to_release_.push_back(std::move(wants[i].lease));
      releases_.notify_one();
    }
  }
  t_parked = out.parked_.get();
  return out;
}

std::string
SharedCapacity::new_lease()
{
  std::string lease = options_.daemon_id;
  lease.append(":").append(std::to_string(++next_lease_));
  return lease;
}

void
SharedCapacity::refuse_all(std::unique_lock<std::mutex>& lock, Gate& gate)
{
  std::vector<std::function<void()>> refusals;
  for (auto it = gate.waiters_.begin(); it != gate.waiters_.end();) {
    CapacityWaiter* waiter = *it;
    if (!waiter->on_refused_) {
      ++it; // cannot be told: it waits for its deadline
      continue;
    }
    waiter->queued_ = false;
    refusals.push_back(waiter->on_refused_);
    it = gate.waiters_.erase(it);
  }
  lock.unlock();
  for (const auto& refusal : refusals) {
    refusal();
  }
  lock.lock();
}

void
SharedCapacity::pump(std::unique_lock<std::mutex>& lock, Gate& gate)
{
  gate.dirty_ = false;
  while (!gate.waiters_.empty() && !stopping_) {
    std::optional<Permit> permit;
    std::optional<Permit> handoff; // the next gate's, taken in the same round trip
    Gate* then = nullptr;
    if (degraded_) {
      if (options_.failure == SharedFailureMode::refuse) {
        refuse_all(lock, gate);
        return;
      }
      permit = gate.local_.try_acquire();
      if (permit) {
        ++fallback_permits_;
      }
    } else if (Clock::now() >= gate.retry_at_ || gate.retry_at_ == Clock::time_point::max()) {
      CapacityWaiter& front = *gate.waiters_.front();
      then = prefetchable(front.then_);
      std::vector<SharedLeaseBackend::Want> wants{{gate.key_, gate.limit_, new_lease()}};
      if (then != nullptr) {
        wants.push_back({then->key_, then->limit_, new_lease()});
      }
      // The front waiter's lookup rides along; its answer goes out whatever
      // happens to the waiter meanwhile (the callback owns what it needs).
      std::string lookup;
      std::function<void(std::optional<std::string>)> on_lookup;
      if (front.on_lookup_) {
        lookup = std::move(front.lookup_key_);
        on_lookup = std::move(front.on_lookup_);
        front.on_lookup_ = nullptr;
      }
      SharedLeaseBackend::Answer answer;
      lock.unlock();
      try {
        ++round_trips_;
        answer = backend_.acquire(wants, options_.lease_ttl, lookup);
      } catch (const std::exception& e) {
        if (on_lookup) {
          on_lookup(std::nullopt);
        }
        lock.lock();
        degrade(lock, e.what());
        continue; // the fallback answers
      }
      if (on_lookup) {
        on_lookup(std::move(answer.found));
      }
      const auto& attempts = answer.attempts;
      lock.lock();
      if (attempts.size() > 1 && attempts[1].granted) {
        ++leases_acquired_;
        // Handed over only if the front waiter still asks that gate next and
        // nobody queued there meanwhile; else it goes back.
        if (!gate.waiters_.empty() && prefetchable(gate.waiters_.front()->then_) == then) {
          handoff = then->held_.try_acquire();
        }
        if (handoff) {
          then->leases_.push_back(std::move(wants[1].lease));
        } else {
          then->to_release_.push_back(std::move(wants[1].lease));
          releases_.notify_one();
        }
      }
      if (!attempts.empty() && attempts[0].granted) {
        ++leases_acquired_;
        gate.retry_at_ = Clock::time_point::max();
        if (gate.waiters_.empty()) {
          // Withdrawn meanwhile: give the lease back.
          gate.to_release_.push_back(std::move(wants[0].lease));
          releases_.notify_one();
          break;
        }
        permit = gate.held_.try_acquire(); // never fails: the store keeps us below the limit
        if (permit) {
          gate.leases_.push_back(std::move(wants[0].lease));
        } else {
          gate.to_release_.push_back(std::move(wants[0].lease));
          releases_.notify_one();
        }
      } else if (!attempts.empty()) {
        gate.retry_at_ =
            Clock::now() + std::max(attempts[0].retry_in, std::chrono::milliseconds(1));
      }
    }
    if (!permit) {
      // Full for now: say so once to each waiter, outside the lock.
      auto notices = full_notices(gate);
      lock.unlock();
      handoff.reset();
      for (const auto& notice : notices) {
        notice();
      }
      lock.lock();
      return;
    }
    CapacityWaiter* next = gate.waiters_.front();
    gate.waiters_.pop_front();
    next->queued_ = false;
    // Copied under the lock: once unqueued, the waiter may be destroyed by a
    // cancellation racing with this grant.
    const CapacityWaiter::Grant grant = next->grant_;
    // Granted without asking the store (its local share): nothing was read.
    auto unanswered = std::move(next->on_lookup_);
    next->on_lookup_ = nullptr;
    lock.unlock();
    if (unanswered) {
      unanswered(std::nullopt);
    }
    Prefetch::Parked parked;
    parked.gates[0] = then;
    parked.permits[0] = std::move(handoff);
    t_parked = &parked;
    try {
      grant(std::move(*permit));
    } catch (...) {
      // The permit went back during unwinding.
    }
    t_parked = nullptr;
    permit.reset();
    parked.permits[0].reset(); // not asked for (the call ended meanwhile): its lease goes back
    lock.lock();
  }
}

void
SharedCapacity::release_leases(std::unique_lock<std::mutex>& lock)
{
  std::vector<SharedLeaseBackend::Held> leases;
  std::vector<Gate*> freed;
  for (auto& [key, gate] : gates_) {
    if (gate->to_release_.empty()) {
      continue;
    }
    for (auto& lease : gate->to_release_) {
      leases.push_back({key, std::move(lease)});
    }
    gate->to_release_.clear();
    freed.push_back(gate.get());
  }
  if (degraded_) {
    // Unreachable: the leases expire within the TTL; the writes are lost.
    writes_.clear();
    write_bytes_ = 0;
    return;
  }
  // The oldest writes, up to one batch; the rest go with the next trip.
  std::vector<SharedLeaseBackend::Write> writes;
  std::size_t batch_bytes = 0;
  while (!writes_.empty() && (writes.empty() || batch_bytes + write_size(writes_.front()) <=
                                                    options_.write_batch_max_bytes)) {
    batch_bytes += write_size(writes_.front());
    writes.push_back(std::move(writes_.front()));
    writes_.pop_front();
  }
  write_bytes_ -= batch_bytes;
  if (leases.empty() && writes.empty()) {
    return;
  }
  lock.unlock();
  std::string failure;
  try {
    ++round_trips_;
    backend_.release(leases, writes);
  } catch (const std::exception& e) {
    failure = e.what(); // they expire within the TTL
  }
  lock.lock();
  if (!failure.empty()) {
    degrade(lock, failure);
    return;
  }
  // Our own waiters need not wait for the announcement to come back.
  for (Gate* gate : freed) {
    if (!gate->waiters_.empty()) {
      wake_locked(gate);
    }
  }
}

void
SharedCapacity::run_releases()
{
  std::unique_lock lock(mutex_);
  const auto pending = [this] {
    return !writes_.empty() || std::any_of(gates_.begin(), gates_.end(), [](const auto& entry) {
      return !entry.second->to_release_.empty();
    });
  };
  while (true) {
    releases_.wait(lock, [&] { return stopping_ || pending(); });
    if (!pending()) {
      return; // stopping, and nothing left to give back
    }
    release_leases(lock);
  }
}

void
SharedCapacity::renew_leases(std::unique_lock<std::mutex>& lock, bool re_add)
{
  renew_at_ = Clock::now() + options_.lease_ttl / 3;
  for (auto& [key, gate] : gates_) {
    if (gate->leases_.empty() || degraded_) {
      continue;
    }
    std::vector<std::string> leases = gate->leases_;
    const std::string store_key = key;
    lock.unlock();
    std::string failure;
    try {
      ++round_trips_;
      backend_.renew(store_key, leases, options_.lease_ttl, re_add);
      renewals_ += leases.size();
    } catch (const std::exception& e) {
      failure = e.what();
    }
    lock.lock();
    if (!failure.empty()) {
      degrade(lock, failure);
      return;
    }
  }
}

void
SharedCapacity::try_rejoin(std::unique_lock<std::mutex>& lock)
{
  lock.unlock();
  bool ok = true;
  try {
    ++round_trips_;
    backend_.connect();
  } catch (const std::exception&) {
    ok = false; // still unreachable (or refusing us): keep the fallback
  }
  lock.lock();
  if (!ok) {
    retry_at_ = Clock::now() + options_.retry_interval;
    return;
  }
  degraded_ = false;
  reason_.clear();
  log::get("core")->info("shared capacity rejoined: redis reachable again");
  for (auto& [key, gate] : gates_) {
    gate->retry_at_ = Clock::time_point::max();
  }
  renew_leases(lock, true); // re-adds what a restarted store lost
  wake_locked(nullptr);
}

void
SharedCapacity::run()
{
  std::unique_lock lock(mutex_);
  while (true) {
    Clock::time_point next = Clock::time_point::max();
    bool any_leases = false;
    for (const auto& [key, gate] : gates_) {
      any_leases = any_leases || !gate->leases_.empty();
      if (!gate->waiters_.empty() && !degraded_) {
        next = std::min(next, gate->retry_at_);
      }
    }
    if (any_leases && !degraded_) {
      next = std::min(next, renew_at_);
    }
    if (degraded_) {
      next = std::min(next, retry_at_);
    }
    if (next == Clock::time_point::max()) {
      changed_.wait(lock, [this] { return stopping_ || work_; });
    } else {
      changed_.wait_until(lock, next, [this] { return stopping_ || work_; });
    }
    work_ = false;
    const auto now = Clock::now();
    if (stopping_) {
      return; // the releaser gives back what is left
    }
    if (degraded_ && now >= retry_at_) {
      try_rejoin(lock);
    }
    if (!degraded_ && now >= renew_at_) {
      renew_leases(lock, false);
    }
    for (auto& [key, gate] : gates_) {
      if (!gate->waiters_.empty() &&
          (gate->dirty_ || (!degraded_ && Clock::now() >= gate->retry_at_))) {
        if (gate->dirty_ && !degraded_) {
          gate->retry_at_ = Clock::time_point::max(); // a release was announced: try now
        }
        pump(lock, *gate);
      } else {
        gate->dirty_ = false;
      }
    }
  }
}

} // namespace exai::core
