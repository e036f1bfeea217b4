#include "core/capacity/capacity_controller.hpp"

#include "core/error.hpp"
#include "core/util/enum_names.hpp"

#include <array>
#include <condition_variable>
#include <mutex>

namespace exai::core {

std::string_view
scope_name(Scope scope) noexcept
{
  static constexpr EnumNames<Scope, 4> kNames{{"conversation", "session", "global", "provider"},
                                              "global"};
  return kNames(scope);
}

CallPermits&
CallPermits::operator=(CallPermits&& other) noexcept
{
  if (this != &other) {
    reset();
    held_ = std::move(other.held_);
    provider_ = std::move(other.provider_);
  }
  return *this;
}

void
CallPermits::reset() noexcept
{
  // Reverse of acquisition order; a vector would destroy front to back.
  while (!held_.empty()) {
    held_.pop_back();
  }
  provider_.clear();
}

CapacityController::CapacityController(const CapacityLimits& limits)
    : global_("global", limits.global)
    , sessions_("session", limits.session)
    , conversations_("conversation", limits.conversation)
    , timers_(std::make_unique<Scheduler>())
{
  for (const auto& [id, capacity] : limits.providers) {
    providers_.emplace(id, std::make_unique<CapacityLimiter>("provider:" + id, capacity));
  }
  global_source_ = &global_;
  shared_ = limits.shared;
  if (limits.shared != nullptr) {
    global_source_ = &limits.shared->gate("global", limits.global);
  }
  for (const auto& [id, capacity] : limits.providers) {
    provider_sources_.emplace(id,
                              limits.shared != nullptr
                                  ? &limits.shared->gate("provider:" + id, capacity)
                                  : static_cast<PermitSource*>(providers_.at(id).get()));
  }
}

CapacityController::~CapacityController()
{
  timers_.reset(); // no deadline fires into the limiters below from here on
}

SharedCapacity::Prefetch
CapacityController::prefetch(const CallScopes& scopes, Lookup& lookup)
{
  if (shared_ == nullptr) {
    return {};
  }
  PermitSource* provider = nullptr;
  if (const auto it = provider_sources_.find(scopes.provider); it != provider_sources_.end()) {
    provider = it->second;
  }
  auto taken = shared_->prefetch(*global_source_, provider, lookup.key, lookup.on_answer);
  if (!lookup.on_answer) {
    lookup.key.clear(); // answered
  }
  return taken;
}

// One call's acquisition, from start to outcome. Every transition happens
// under `mutex_`; limiter locks are only ever taken inside it (never the
// other way round), and callbacks run outside it.
class CapacityController::Pending : public std::enable_shared_from_this<Pending> {
public:
  Pending(CapacityController& owner, Request request, Done done, Lookup lookup)
      : owner_(owner)
      , request_(std::move(request))
      , lookup_(std::move(lookup))
      , done_(std::move(done))
  {
  }

  void start()
  {
    // Registered before the first step; when stop was already requested it
    // runs right here and the acquisition ends as cancelled. It may also run
    // on the stopping thread before on_stop_ is set: it is stored under the
    // lock, and dropped if it already ended the acquisition.
    auto on_stop = std::make_unique<std::stop_callback<std::function<void()>>>(
        request_.stop, std::function<void()>([weak = weak_from_this()] {
          if (auto self = weak.lock()) {
            self->give_up(AcquireStatus::cancelled);
          }
        }));
    std::unique_lock lock(mutex_);
    if (finished_) {
      lock.unlock();
      on_stop.reset(); // outside the lock: it waits for a callback that takes it
      return;
    }
    on_stop_ = std::move(on_stop);
    advance(lock);
  }

private:
  // The limiter of step `step_` (and its lease for keyed scopes), or null
  // when the call does not need that scope.
  PermitSource* limiter_for_step()
  {
    switch (step_) {
    case 0:
      if (request_.scopes.conversation_id.empty()) {
        return nullptr;
      }
      lease_.emplace(owner_.conversations_.lease(request_.scopes.conversation_id));
      return &lease_->limiter();
    case 1:
      lease_.emplace(owner_.sessions_.lease(request_.scopes.session_id));
      return &lease_->limiter();
    case 2:
      return owner_.global_source_;
    default:
      return request_.scopes.provider.empty()
                 ? nullptr
                 : owner_.provider_sources_.find(request_.scopes.provider)->second;
    }
  }

  static Scope scope_of(std::size_t step) noexcept
  {
    constexpr std::array<Scope, 4> kOrder{
        Scope::conversation, Scope::session, Scope::global, Scope::provider};
    return kOrder.at(std::min<std::size_t>(step, 3));
  }

  void keep(Permit permit)
  {
    if (step_ == 3) {
      permits_.provider_ = request_.scopes.provider;
    }
    permits_.held_.push_back({std::move(lease_), std::move(permit)});
    lease_.reset();
    ++step_;
  }

  // Takes every remaining scope that is free; queues on the first full one.
  void advance(std::unique_lock<std::mutex>& lock)
  {
    while (!finished_ && step_ < 4) {
      PermitSource* limiter = limiter_for_step();
      if (limiter == nullptr) {
        ++step_;
        continue;
      }
      waiter_.emplace(
          [weak = weak_from_this()](Permit permit) {
            if (auto self = weak.lock()) {
              self->granted(std::move(permit));
            } // else: nobody wants it; the Permit releases the unit again
          },
          [weak = weak_from_this()] {
            if (auto self = weak.lock()) {
              self->found_full();
            }
          },
          [weak = weak_from_this()] {
            if (auto self = weak.lock()) {
              self->give_up(AcquireStatus::refused);
            }
          });
      if (step_ == 2 && !request_.scopes.provider.empty()) {
        waiter_->then(owner_.provider_sources_.find(request_.scopes.provider)->second);
      }
      if (step_ == 2 && lookup_.on_answer) {
        waiter_->look_up(std::move(lookup_.key), std::move(lookup_.on_answer));
        lookup_.on_answer = nullptr;
      }
      if (auto permit = limiter->acquire_or_queue(*waiter_)) {
        keep(std::move(*permit));
        continue;
      }
      waiting_on_ = limiter;
      keep_alive_ = shared_from_this();
      if (Clock::now() >= request_.deadline && limiter->answers_later()) {
        try_once_ = true; // the source's first answer decides: found_full() gives up
        return;
      }
      if (Clock::now() >= request_.deadline) {
        if (limiter->withdraw(*waiter_)) {
          finish(lock,
                 CapacityRejection{scope_of(step_), provider_of_step(), AcquireStatus::timed_out});
        } // else granted meanwhile: granted() continues
        return;
      }
      if (!timer_armed_) {
        timer_armed_ = true;
        timer_ = owner_.timers_->at(request_.deadline, [weak = weak_from_this()] {
          if (auto self = weak.lock()) {
            self->give_up(AcquireStatus::timed_out);
          }
        });
      }
      if (limiter->answers_later()) {
        return; // found_full() tells, if it comes to that
      }
      const Scope scope = scope_of(step_);
      const std::string provider = provider_of_step();
      if (request_.on_wait) {
        lock.unlock();
        request_.on_wait(scope, provider);
        lock.lock();
      }
      return;
    }
    if (!finished_) {
      finish(lock, std::move(permits_));
    }
  }

  std::string provider_of_step() const
  {
    return step_ >= 3 ? request_.scopes.provider : std::string();
  }

  // A source that answers later found the scope full: the call waits.
  void found_full()
  {
    std::unique_lock lock(mutex_);
    if (try_once_ && !finished_) {
      lock.unlock();
      give_up(AcquireStatus::timed_out);
      return;
    }
    if (finished_ || waiting_on_ == nullptr || !request_.on_wait) {
      return;
    }
    const Scope scope = scope_of(step_);
    const std::string provider = provider_of_step();
    lock.unlock();
    request_.on_wait(scope, provider);
  }

  // A queued waiter got its unit (on the releasing thread).
  void granted(Permit permit)
  {
    std::unique_lock lock(mutex_);
    if (finished_) {
      return; // gave up meanwhile; `permit` goes back at once
    }
    waiting_on_ = nullptr;
    keep(std::move(permit));
    advance(lock);
  }

  // Deadline or cancellation: ends the acquisition unless it already ended
  // or its unit was granted at the same moment (then that grant wins).
  void give_up(AcquireStatus status)
  {
    std::unique_lock lock(mutex_);
    if (finished_) {
      return;
    }
    if (waiting_on_ != nullptr && !waiting_on_->withdraw(*waiter_) &&
        status == AcquireStatus::timed_out) {
      return; // the grant is on its way and admits the call
    }
    // Cancelled while a grant is on its way: the grant finds finished_ and
    // its permit goes straight back.
    finish(lock, CapacityRejection{scope_of(step_), provider_of_step(), status});
  }

  void finish(std::unique_lock<std::mutex>& lock, AcquireOutcome outcome)
  {
    finished_ = true;
    waiting_on_ = nullptr;
    if (std::holds_alternative<CapacityRejection>(outcome)) {
      permits_.reset(); // before the caller hears of it: a rejection holds nothing
    }
    lease_.reset();
    Scheduler::Handle timer = std::move(timer_);
    auto on_stop = std::move(on_stop_);
    Done done = std::move(done_);
    // Every caller of finish() holds its own reference, so this is not the last.
    const auto keep_alive = std::move(keep_alive_);
    lock.unlock();
    // Outside the lock: both may wait for a callback that needs it.
    timer.reset();
    on_stop.reset();
    if (done) {
      done(std::move(outcome));
    }
    lock.lock();
  }

  CapacityController& owner_;
  const Request request_;
  Lookup lookup_; // guarded by mutex_; handed to the global waiter
  std::mutex mutex_;
  Done done_;                                 // guarded by mutex_
  std::size_t step_ = 0;                      // guarded by mutex_
  CallPermits permits_;                       // guarded by mutex_
  std::optional<KeyedLimiters::Lease> lease_; // guarded by mutex_
  std::optional<CapacityWaiter> waiter_;      // guarded by mutex_
  PermitSource* waiting_on_ = nullptr;        // guarded by mutex_
  bool timer_armed_ = false;                  // guarded by mutex_
  bool try_once_ = false;               // guarded by mutex_: deadline passed, one answer pending
  bool finished_ = false;               // guarded by mutex_
  std::shared_ptr<Pending> keep_alive_; // guarded by mutex_: set while queued on a limiter
  Scheduler::Handle timer_;             // guarded by mutex_
  std::unique_ptr<std::stop_callback<std::function<void()>>> on_stop_; // guarded by mutex_
};

void
CapacityController::acquire_async(Request request, Done done, Lookup lookup)
{
  if (!request.scopes.provider.empty() && providers_.count(request.scopes.provider) == 0) {
    throw Error(Errc::internal_error,
                "no capacity limiter for provider " + request.scopes.provider);
  }
  const auto pending =
      std::make_shared<Pending>(*this, std::move(request), std::move(done), std::move(lookup));
  pending->start();
}

std::optional<CapacityRejection>
CapacityController::switch_provider(CallPermits& permits,
                                    const std::string& provider,
                                    Clock::time_point deadline,
                                    const std::stop_token& stop)
{
  const auto limiter = provider_sources_.find(provider);
  if (limiter == provider_sources_.end()) {
    throw Error(Errc::internal_error, "no capacity limiter for provider " + provider);
  }
  if (!permits.provider_.empty() && !permits.held_.empty()) {
    permits.held_.pop_back(); // the provider permit is always the last one taken
    permits.provider_.clear();
  }
  AcquireStatus status = AcquireStatus::timed_out;
  auto permit = limiter->second->acquire_until(deadline, stop, &status);
  if (!permit) {
    return CapacityRejection{Scope::provider, provider, status};
  }
  permits.held_.push_back({std::nullopt, std::move(*permit)});
  permits.provider_ = provider;
  return std::nullopt;
}

std::optional<Permit>
CapacityController::extra_provider_permit(const std::string& provider,
                                          Clock::time_point deadline,
                                          const std::stop_token& stop)
{
  const auto limiter = provider_sources_.find(provider);
  if (limiter == provider_sources_.end()) {
    throw Error(Errc::internal_error, "no capacity limiter for provider " + provider);
  }
  AcquireStatus status = AcquireStatus::timed_out;
  return limiter->second->acquire_until(deadline, stop, &status);
}

AcquireOutcome
CapacityController::acquire(const CallScopes& scopes,
                            Clock::time_point deadline,
                            const std::stop_token& stop,
                            const WaitNotice& on_wait)
{
  std::mutex mutex;
  std::condition_variable changed;
  std::optional<AcquireOutcome> outcome; // guarded by mutex
  acquire_async(Request{scopes, deadline, stop, on_wait}, [&](AcquireOutcome result) {
    const std::lock_guard lock(mutex);
    outcome.emplace(std::move(result));
    changed.notify_one();
  });
  std::unique_lock lock(mutex);
  changed.wait(lock, [&] { return outcome.has_value(); });
  return std::move(*outcome);
}

CapacitySnapshot
CapacityController::snapshot() const
{
  CapacitySnapshot snap;
  snap.global = global_source_->stats();
  for (const auto& [id, limiter] : provider_sources_) {
    snap.providers.emplace(id, limiter->stats());
  }
  snap.sessions = sessions_.totals();
  snap.session_limiters = sessions_.size();
  snap.conversations = conversations_.totals();
  snap.conversation_limiters = conversations_.size();
  snap.session_capacity_each = sessions_.capacity_each();
  snap.conversation_capacity_each = conversations_.capacity_each();
  return snap;
}

} // namespace exai::core
