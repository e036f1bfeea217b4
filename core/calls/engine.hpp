#pragma once

#include "core/calls/call_engine.hpp"
#include "core/calls/conversation_store.hpp"
#include "core/calls/inflight_registry.hpp"
#include "core/calls/scheduler.hpp"
#include "core/calls/thread_pool.hpp"
#include "core/capacity/capacity_controller.hpp"
#include "core/config/config.hpp"
#include "core/providers/chat.hpp"
#include "core/providers/providers.hpp"
#include "core/tools/tool_registry.hpp"
#include "core/util/histogram.hpp"
#include "core/util/ttl_cache.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

namespace exai::core {

// Monotonic counters of call outcomes since start-up.
struct EngineCounters {
  std::uint64_t ok = 0;
  std::uint64_t failed = 0; // provider and tool errors
  std::uint64_t timed_out = 0;
  std::uint64_t cancelled = 0;
  std::uint64_t shut_down = 0;
  std::map<std::string, std::uint64_t, std::less<>> rejected; // by scope
  std::uint64_t replayed = 0;
  std::uint64_t coalesced = 0;
  std::uint64_t cache_hits = 0;
};

struct EngineStats {
  CapacitySnapshot capacity;
  std::size_t inflight_calls = 0; // request ids awaiting their result
  std::size_t executions = 0;     // tool runs (coalesced calls share one)
  std::size_t queued = 0;         // executions waiting for a call thread
  std::size_t cached_results = 0; // replayable results
  std::size_t conversations = 0;
  std::size_t scheduled_timers = 0;
  bool accepting = true;
  EngineCounters counters;
  HistogramSnapshot call_latency;                                         // accept -> result
  std::map<std::string, HistogramSnapshot, std::less<>> upstream_latency; // per provider
  std::map<std::string, std::string, std::less<>> circuits; // provider -> closed|open|half_open
};

// What the engine borrows; all must outlive it.
struct EngineDeps {
  const DaemonConfig& config;
  const ProviderRegistry& providers;
  const ToolRegistry& tools;
  ChatBackend& chat;
};

// The call engine of `exai serve` (SPEC §3). Every accepted call ends in
// exactly one call_tool_res, produced by complete(); capacity is held by
// CallPermits on the thread that runs the tool; in-flight entries are owned
// by tickets inside the calls. Thread-safe.
class Engine final : public CallEngine {
public:
  explicit Engine(const EngineDeps& deps);
  ~Engine() override;
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;
  Engine(Engine&&) = delete;
  Engine& operator=(Engine&&) = delete;

  void submit(CallRequest request, const std::shared_ptr<CallSink>& sink) override;
  bool cancel(std::string_view session_id, std::string_view request_id) override;
  void attach_session(const std::string& session_id,
                      const std::shared_ptr<CallSink>& sink) override;
  nlohmann::json list_tools() const override;

  // Stops accepting calls (new ones get SHUTTING_DOWN), lets running calls
  // finish for up to `grace`, cancels the rest with SHUTTING_DOWN, and returns
  // once every execution has ended and released its capacity. Idempotent.
  void shutdown(std::chrono::milliseconds grace);

  EngineStats stats() const;
  // The `status` tool's view: capacity, counters, uptime.
  nlohmann::json status_json() const;

private:
  struct Call;
  struct Execution;
  class MeasuredChat;
  using Clock = std::chrono::steady_clock;

  // Replays a stored result or joins a running call with this request_id.
  // Returns false when the id is free (nothing was sent).
  bool attach_existing(const CallRequest& request,
                       const std::string& fingerprint,
                       std::string_view tool_name,
                       const std::shared_ptr<CallSink>& sink);
  void start(const std::shared_ptr<Execution>& execution);
  void run(const std::shared_ptr<Execution>& execution, std::optional<CallPermits> permits);
  void finish(const std::shared_ptr<Execution>& execution, const ToolResult& result);
  void expire(const std::shared_ptr<Execution>& execution);
  std::vector<std::shared_ptr<Call>> detach(Execution& execution);
  void retire(const std::shared_ptr<Execution>& execution);
  // The one place a call ends: sends its call_tool_res (once), stores it for
  // replay, counts the outcome and drops the in-flight entry.
  void complete(Call& call, const ToolResult& result);
  void count(const ToolResult& result) noexcept;
  void reject(const std::shared_ptr<CallSink>& sink,
              const std::string& request_id,
              Errc code,
              const std::string& message,
              const nlohmann::json& details = nlohmann::json::object());
  ToolFailure capacity_failure(const CapacityRejection& rejection, const Execution& execution);

  const DaemonConfig& config_;
  const ProviderRegistry& providers_;
  const ToolRegistry& tools_;
  ChatBackend& chat_;
  const Clock::time_point started_;
  Histogram call_latency_;
  std::map<std::string, std::unique_ptr<Histogram>, std::less<>> upstream_latency_;
  std::unique_ptr<MeasuredChat> measured_chat_; // chat_ plus upstream latency

  CapacityController capacity_;
  ConversationStore conversations_;
  struct StoredResult {
    std::string fingerprint; // tool + arguments of the call that produced it
    std::string frame;       // its call_tool_res
  };
  TtlCache<StoredResult> results_;                 // request_id -> result
  TtlCache<std::vector<std::string>> reuse_;       // identical-call key -> outputs
  TtlCache<std::vector<std::string>> undelivered_; // session -> request ids
  InflightRegistry<Call> inflight_;

  mutable std::mutex mutex_;
  std::condition_variable drained_;
  std::map<std::string, std::shared_ptr<Execution>, std::less<>> shared_; // guarded by mutex_
  std::set<std::shared_ptr<Execution>> live_;                             // guarded by mutex_
  // Atomics, so outcomes can be counted under a call's own lock (before its
  // result is sent) without ordering against mutex_.
  struct Counters {
    std::atomic<std::uint64_t> ok{0};
    std::atomic<std::uint64_t> failed{0};
    std::atomic<std::uint64_t> timed_out{0};
    std::atomic<std::uint64_t> cancelled{0};
    std::atomic<std::uint64_t> shut_down{0};
    std::atomic<std::uint64_t> replayed{0};
    std::atomic<std::uint64_t> coalesced{0};
    std::atomic<std::uint64_t> cache_hits{0};
    std::array<std::atomic<std::uint64_t>, 4> rejected{}; // by Scope
  };
  Counters counters_;
  std::atomic<bool> accepting_{true};

  // Destroyed first (reverse order): no timer or call thread outlives the
  // state above.
  Scheduler scheduler_;
  ThreadPool pool_;
};

} // namespace exai::core
