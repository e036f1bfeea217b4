#include "core/capacity/capacity_controller.hpp"

#include "core/error.hpp"

namespace exai::core {

std::string_view
scope_name(Scope scope) noexcept
{
  switch (scope) {
  case Scope::conversation:
    return "conversation";
  case Scope::session:
    return "session";
  case Scope::global:
    return "global";
  case Scope::provider:
    return "provider";
  }
  return "global";
}

CallPermits&
CallPermits::operator=(CallPermits&& other) noexcept
{
  if (this != &other) {
    reset();
    held_ = std::move(other.held_);
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
}

CapacityController::CapacityController(const CapacityLimits& limits)
    : global_("global", limits.global)
    , sessions_("session", limits.session)
    , conversations_("conversation", limits.conversation)
{
  for (const auto& [id, capacity] : limits.providers) {
    providers_.emplace(id, std::make_unique<CapacityLimiter>("provider:" + id, capacity));
  }
}

namespace {

// Takes one unit of `limiter`: without waiting if possible, else announcing
// the wait and blocking until `deadline`.
std::optional<Permit>
take(CapacityLimiter& limiter,
     Scope scope,
     const std::string& provider,
     CapacityController::Clock::time_point deadline,
     const std::stop_token& stop,
     const CapacityController::WaitNotice& on_wait,
     AcquireStatus& status)
{
  if (stop.stop_requested()) {
    status = AcquireStatus::cancelled;
    return std::nullopt;
  }
  if (auto permit = limiter.try_acquire()) {
    status = AcquireStatus::acquired;
    return permit;
  }
  if (CapacityController::Clock::now() >= deadline) {
    status = AcquireStatus::timed_out;
    return std::nullopt;
  }
  if (on_wait) {
    on_wait(scope, provider);
  }
  return limiter.acquire_until(deadline, stop, &status);
}

} // namespace

std::variant<CallPermits, CapacityRejection>
CapacityController::acquire(const CallScopes& scopes,
                            Clock::time_point deadline,
                            const std::stop_token& stop,
                            const WaitNotice& on_wait)
{
  CapacityLimiter* provider_limiter = nullptr;
  if (!scopes.provider.empty()) {
    const auto it = providers_.find(scopes.provider);
    if (it == providers_.end()) {
      throw Error(Errc::internal_error, "no capacity limiter for provider " + scopes.provider);
    }
    provider_limiter = it->second.get();
  }

  CallPermits permits;
  permits.held_.reserve(4);
  AcquireStatus status = AcquireStatus::acquired;
  const std::string none;
  const auto step = [&](std::optional<KeyedLimiters::Lease> lease,
                        CapacityLimiter& limiter,
                        Scope scope,
                        const std::string& provider) -> std::optional<CapacityRejection> {
    auto permit = take(limiter, scope, provider, deadline, stop, on_wait, status);
    if (!permit) {
      return CapacityRejection{scope, provider, status};
    }
    permits.held_.push_back({std::move(lease), std::move(*permit)});
    return std::nullopt;
  };

  if (!scopes.conversation_id.empty()) {
    auto lease = conversations_.lease(scopes.conversation_id);
    CapacityLimiter& limiter = lease.limiter();
    if (auto rejected = step(std::move(lease), limiter, Scope::conversation, none)) {
      return *rejected;
    }
  }
  {
    auto lease = sessions_.lease(scopes.session_id);
    CapacityLimiter& limiter = lease.limiter();
    if (auto rejected = step(std::move(lease), limiter, Scope::session, none)) {
      return *rejected;
    }
  }
  if (auto rejected = step(std::nullopt, global_, Scope::global, none)) {
    return *rejected;
  }
  if (provider_limiter != nullptr) {
    if (auto rejected = step(std::nullopt, *provider_limiter, Scope::provider, scopes.provider)) {
      return *rejected;
    }
  }
  return permits;
}

CapacitySnapshot
CapacityController::snapshot() const
{
  CapacitySnapshot snap;
  snap.global = global_.stats();
  for (const auto& [id, limiter] : providers_) {
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
