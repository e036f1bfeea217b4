#pragma once

#include "core/capacity/capacity.hpp"
#include "core/capacity/keyed_limiters.hpp"
#include "core/capacity/shared_capacity.hpp"
#include "core/util/scheduler.hpp"

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace exai::core {

// The capacity scopes of a call, in acquisition order (SPEC §3).
enum class Scope { conversation, session, global, provider };

// "conversation" | "session" | "global" | "provider".
std::string_view scope_name(Scope scope) noexcept;

struct CapacityLimits {
  std::size_t global = 24;
  std::size_t session = 8;
  std::size_t conversation = 1;
  std::map<std::string, std::size_t, std::less<>> providers; // provider id -> capacity
  // Set: the global and provider scopes are shared with other daemons
  // (EXAI_REDIS_URL); must outlive the controller.
  SharedCapacity* shared = nullptr;
};

// Which limiters one call needs. An empty conversation_id means the call
// belongs to no conversation (its session scope bounds it); an empty provider
// means the tool calls no model and takes no provider permit.
struct CallScopes {
  std::string session_id;
  std::string conversation_id;
  std::string provider;
};

// Why a call got no capacity. Nothing is held when this is returned.
struct CapacityRejection {
  Scope scope = Scope::global;
  std::string provider; // set when scope == provider
  AcquireStatus status = AcquireStatus::timed_out;
};

// The permits of one admitted call. Move-only; releases them in the reverse
// of acquisition order when destroyed or reset.
class CallPermits {
public:
  CallPermits() = default;
  CallPermits(CallPermits&&) noexcept = default;
  CallPermits& operator=(CallPermits&& other) noexcept;
  CallPermits(const CallPermits&) = delete;
  CallPermits& operator=(const CallPermits&) = delete;
  ~CallPermits() { reset(); }

  // Releases everything, provider first and conversation last. Idempotent.
  void reset() noexcept;
  std::size_t held() const noexcept { return held_.size(); }
  // The provider whose permit is held (the last one taken), or "".
  const std::string& provider() const noexcept { return provider_; }

private:
  friend class CapacityController;
  struct Held {
    std::optional<KeyedLimiters::Lease> lease; // keeps a keyed limiter alive
    Permit permit;                             // destroyed before the lease
  };
  std::vector<Held> held_;
  std::string provider_;
};

struct CapacitySnapshot {
  LimiterStats global;
  std::map<std::string, LimiterStats, std::less<>> providers;
  LimiterStats sessions; // totals over live session limiters
  std::size_t session_limiters = 0;
  LimiterStats conversations; // totals over live conversation limiters
  std::size_t conversation_limiters = 0;
  std::size_t session_capacity_each = 0;
  std::size_t conversation_capacity_each = 0;
};

// What acquire_async() reports, exactly once.
using AcquireOutcome = std::variant<CallPermits, CapacityRejection>;

// Admits calls through every scope in the fixed order conversation ->
// session -> global -> provider, all within one deadline. Fixed order means
// two calls can never hold-and-wait on each other in a cycle. A call that
// finds a scope full is queued on it (FIFO) and holds no thread while it
// waits: the next scope is tried by whichever thread grants it the unit.
// Thread-safe.
class CapacityController {
public:
  using Clock = CapacityLimiter::Clock;
  // Called when the acquisition starts waiting on a full scope. Runs on the
  // thread that found the scope full (possibly a releasing thread); must not
  // block or take locks that are held while permits are released.
  using WaitNotice = std::function<void(Scope scope, const std::string& provider)>;
  // Receives the outcome. Same threading rules as WaitNotice; it may run
  // before acquire_async() returns.
  using Done = std::function<void(AcquireOutcome outcome)>;

  struct Request {
    CallScopes scopes;
    Clock::time_point deadline; // in the past: try once, never wait
    std::stop_token stop;       // stop requested: the rejection says cancelled
    WaitNotice on_wait;
  };
  // A key to read from the shared store in the round trip that takes the
  // global lease (CapacityWaiter::look_up); `on_answer` gets the value before
  // the call is admitted. Only with a shared global scope.
  struct Lookup {
    std::string key;
    std::function<void(std::optional<std::string>)> on_answer;
  };

  // Throws Error(config_invalid) for a zero capacity.
  explicit CapacityController(const CapacityLimits& limits);
  ~CapacityController();
  CapacityController(const CapacityController&) = delete;
  CapacityController& operator=(const CapacityController&) = delete;

  // Starts acquiring every scope `request` needs, or none: `done` gets the
  // permits, or a rejection naming the scope that was full (timed_out at the
  // deadline, cancelled when stop is requested) with every permit already
  // taken released. Throws Error(internal_error) for a provider that has no
  // limiter (before anything is taken).
  void acquire_async(Request request, Done done, Lookup lookup = {});

  // Gives back `permits`' provider permit and takes one of `provider`
  // instead, waiting until `deadline` at most (blocking: for call threads).
  // The other scopes stay held. On refusal nothing of the old provider is
  // held any more and the rejection names the new one.
  std::optional<CapacityRejection> switch_provider(CallPermits& permits,
                                                   const std::string& provider,
                                                   Clock::time_point deadline,
                                                   const std::stop_token& stop);

  // One more permit of `provider` for a call that already holds its own, for
  // a tool that sends several upstream requests at once (consensus with
  // consult_all_at_once): the provider's cap bounds them all. Waits until
  // `deadline` at most (in the past: tries once); blocking, for call threads.
  // nullopt when the provider stayed full or `stop` was requested.
  std::optional<Permit> extra_provider_permit(const std::string& provider,
                                              Clock::time_point deadline,
                                              const std::stop_token& stop);

  // With shared capacity, on a thread that may block for one store round
  // trip (a call thread, never an event loop): takes the global lease and the
  // call's provider lease ahead (SharedCapacity::prefetch()), for this
  // thread's next acquire_async() to use; `lookup` rides along and is
  // emptied when answered. Keep the result alive across that
  // acquire_async(), no longer. Does nothing without shared capacity.
  SharedCapacity::Prefetch prefetch(const CallScopes& scopes, Lookup& lookup);
  bool shared() const noexcept { return shared_ != nullptr; }

  // Blocking form of acquire_async() for callers that own a thread.
  AcquireOutcome acquire(const CallScopes& scopes,
                         Clock::time_point deadline,
                         const std::stop_token& stop,
                         const WaitNotice& on_wait = {});

  CapacitySnapshot snapshot() const;

private:
  class Pending;

  CapacityLimiter global_;
  std::map<std::string, std::unique_ptr<CapacityLimiter>, std::less<>> providers_;
  // Where global and provider permits come from: the limiters above, or the
  // shared gates.
  PermitSource* global_source_ = nullptr;
  std::map<std::string, PermitSource*, std::less<>> provider_sources_;
  SharedCapacity* shared_ = nullptr;
  KeyedLimiters sessions_;
  KeyedLimiters conversations_;
  // Fires wait deadlines; destroyed first, so no timer outlives the limiters.
  std::unique_ptr<Scheduler> timers_;
};

} // namespace exai::core
