#pragma once

#include "core/calls/call_engine.hpp"
#include "core/calls/conversation_store.hpp"
#include "core/calls/inflight_registry.hpp"
#include "core/calls/shared_store.hpp"
#include "core/calls/toolcall_log.hpp"
#include "core/capacity/capacity_controller.hpp"
#include "core/config/config.hpp"
#include "core/files/file_roots.hpp"
#include "core/providers/chat.hpp"
#include "core/providers/provider_http.hpp"
#include "core/providers/providers.hpp"
#include "core/providers/token_usage.hpp"
#include "core/tools/daemon_view.hpp"
#include "core/tools/tool_registry.hpp"
#include "core/tools/tool_visibility.hpp"
#include "core/util/histogram.hpp"
#include "core/util/scheduler.hpp"
#include "core/util/thread_pool.hpp"
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
  std::size_t inflight_calls = 0;      // request ids awaiting their result
  std::size_t executions = 0;          // tool runs (coalesced calls share one)
  std::size_t queued = 0;              // executions waiting for capacity
  std::size_t call_threads = 0;        // threads the call pool has started
  std::uint64_t loop_calls = 0;        // model calls carried on an event loop, no call thread
  std::size_t cached_results = 0;      // replayable results
  std::size_t cached_result_bytes = 0; // their weight (EXAI_WS_RESULT_MAX_BYTES)
  std::size_t reuse_bytes = 0;         // identical-call cache (EXAI_WS_REUSE_MAX_BYTES)
  std::size_t conversations = 0;
  std::size_t conversation_bytes = 0; // (EXAI_CONVERSATION_MAX_BYTES)
  std::size_t result_budget = 0;      // the three byte budgets, for health
  std::size_t reuse_budget = 0;
  std::size_t conversation_budget = 0;
  bool accepting = true;
  EngineCounters counters;
  HistogramSnapshot call_latency;                                         // accept -> result
  std::map<std::string, HistogramSnapshot, std::less<>> upstream_latency; // per provider
  std::map<std::string, std::string, std::less<>> circuits;    // provider -> closed|open|half_open
  std::map<std::string, UpstreamPoolStats, std::less<>> pools; // provider -> connection pool
  std::map<std::string, HistogramSnapshot, std::less<>> first_token; // streamed, per provider
  UsageSnapshot usage;                       // tokens (and cost) per provider and model
  bool priced = false;                       // a price table is configured (EXAI_PRICES)
  std::optional<SharedCapacityStats> shared; // set with EXAI_REDIS_URL
  std::uint64_t admitted_calls = 0;          // executions that got capacity
  std::uint64_t store_round_trips = 0;       // conversations and results in Redis
};

// One call in flight as the operator view shows it (Engine::inflight_calls).
struct InflightCallView {
  std::string request_id;
  std::string session_id;
  std::string tool;
  std::string model; // the plan's
  std::string provider;
  // "accepted" (not yet queued), "waiting" (for capacity), "running", or
  // "streaming" (a streamed answer is arriving).
  std::string_view state;
  std::string waiting_for; // while waiting: "global", "provider (kimi)", … once known
  std::chrono::milliseconds elapsed{0};
  std::shared_ptr<const nlohmann::json> arguments; // for content excerpts; never null
};

// What the engine borrows; all must outlive it.
struct EngineDeps {
  const DaemonConfig& config;
  const ProviderRegistry& providers;
  const ToolRegistry& tools;
  ChatBackend& chat;
  // Files API, web search, probes; null: the tools that need it say so.
  ProviderHttp* http = nullptr;
  // Global and provider capacity shared with other daemons (EXAI_REDIS_URL);
  // null: local only. Must outlive the engine.
  SharedCapacity* shared = nullptr;
  // Where conversations and replayable results are kept besides memory, so
  // other daemons and restarts see them (EXAI_REDIS_URL); null: memory only.
  SharedStore* store = nullptr;
};

// The call engine of `exai serve` (SPEC §3). Every accepted call ends in
// exactly one result event, produced by complete(). A call waiting for
// capacity is a queued continuation (CapacityController), not a parked
// thread; once admitted, its CallPermits are held by the thread that runs the
// tool. In-flight entries are owned by tickets inside the calls. The engine
// owns every call's deadline. Thread-safe.
class Engine final : public CallEngine {
public:
  explicit Engine(const EngineDeps& deps);
  ~Engine() override;
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  void submit(CallRequest request, const std::shared_ptr<CallSink>& sink) override;
  bool cancel(std::string_view session_id, std::string_view request_id) override;
  void attach_session(const std::string& session_id,
                      const std::shared_ptr<CallSink>& sink) override;
  void undelivered(const std::string& session_id,
                   const std::vector<std::string>& request_ids) override;
  nlohmann::json list_tools() const override;

  // Drops expired results, cached answers and conversations now and returns
  // freed memory to the OS when that was worth it. Runs every few seconds on
  // its own; public for tests.
  void sweep();

  // Stops accepting calls (new ones get SHUTTING_DOWN), lets running calls
  // finish for up to `grace`, cancels the rest with SHUTTING_DOWN, and returns
  // once every execution has ended and released its capacity. Idempotent.
  void shutdown(std::chrono::milliseconds grace);

  // Where the health tool gets the daemon's health document. Call before the
  // first submit(); without one it reports status_json().
  void set_health_source(std::function<nlohmann::json()> health);

  const ToolVisibility& visibility() const noexcept { return visibility_; }
  // How many tools list_tools() has (the visible ones).
  std::size_t listed_tool_count() const noexcept { return tool_list_.size(); }
  // The tool-call log; null when the config has no state directory.
  ToolCallLog* toolcall_log() noexcept { return toolcall_log_.get(); }

  EngineStats stats() const;
  // Every call in flight, from the in-flight registry (read-only: calls pay
  // nothing for it).
  std::vector<InflightCallView> inflight_calls() const;
  // The `status` tool's view: capacity, counters, uptime.
  nlohmann::json status_json() const;

private:
  struct Call;
  struct Execution;
  struct StoreLookup;
  struct LoopRun;
  class MeasuredChat;
  using Clock = std::chrono::steady_clock;
  struct StoredResult {
    std::uint64_t fingerprint = 0; // tool + arguments of the call that produced it
    std::shared_ptr<const ToolResult> result;
  };

  // The key of `request`'s result in the shared store: by token owner when
  // there is one (sessions do not outlive a daemon), else by session; "" when
  // there is no shared store.
  std::string result_store_key(const CallRequest& request) const;

  // submit() from the request_id check on: replay, join or start. On
  // lookups_ when it reads the shared store (a continued conversation).
  void submit_known(CallRequest request, const std::shared_ptr<CallSink>& sink, const Tool& tool);
  // Asks the shared store for `call`'s stored result on lookups_, while its
  // execution waits for capacity: a stored one is sent (a replay) and the
  // execution stopped if nobody else waits for it. run() waits for the answer.
  // nullptr (nothing asked) while EXAI_WS_MAX_QUEUED lookups wait already.
  std::shared_ptr<StoreLookup> look_up_result(const std::shared_ptr<Call>& call,
                                              const std::shared_ptr<Execution>& execution);
  // Sends `text`, if it is `call`'s stored result, as a replay, and stops
  // `execution` when nobody else waits for it.
  void replay_if_stored(const std::shared_ptr<Call>& call,
                        const std::weak_ptr<Execution>& execution,
                        const std::optional<std::string>& text);

  // Replays a stored result or joins a running call with this request_id.
  // Returns false when the id is free (nothing was sent).
  bool attach_existing(const CallRequest& request,
                       const std::string& key,
                       std::uint64_t fingerprint,
                       const std::shared_ptr<CallSink>& sink);
  void start(const std::shared_ptr<Execution>& execution);
  // Takes the call's capacity (acquire_async), ahead on this thread when it
  // is a call thread and capacity is shared.
  void acquire(const std::shared_ptr<Execution>& execution);
  // Heartbeat progress every EXAI_WS_PROGRESS_INTERVAL_SECS; execution mutex held.
  void start_heartbeat(const std::shared_ptr<Execution>& execution);
  void admitted(const std::shared_ptr<Execution>& execution,
                AcquireOutcome outcome,
                bool may_run_inline);
  // Marks `execution` admitted: acks its callers and, unless it runs inline,
  // arms its deadline and heartbeat. Returns the deadline.
  Clock::time_point begin(const std::shared_ptr<Execution>& execution, bool inline_run);
  void
  run(const std::shared_ptr<Execution>& execution, CallPermits permits, Clock::time_point deadline);
  // What a running tool may use; refers to `execution` and `permits`, which
  // must outlive it.
  ToolContext context_for(Execution& execution, CallPermits& permits, Clock::time_point deadline);
  // Runs `execution`'s model call without a call thread when its tool and
  // this thread allow (Tool::model_step, ChatBackend::start): the tool
  // continues on this thread when the answer is in, or on a call thread when
  // what follows blocks (web-search rounds, a fallback). False (permits
  // untouched, nothing done) when the call needs a call thread.
  bool run_on_loop(const std::shared_ptr<Execution>& execution,
                   CallPermits& permits,
                   Clock::time_point deadline);
  void model_answered(const std::shared_ptr<LoopRun>& run, ChatOutcome outcome);
  // Runs `work` (the tool's blocking part) on a call thread and concludes
  // `run` with its result; concludes with `refused` here once the pool takes
  // no more work (shutdown).
  void conclude_on_call_thread(const std::shared_ptr<LoopRun>& run,
                               std::function<ToolResult()> work,
                               ToolResult refused = ToolFailure{Errc::shutting_down,
                                                                "the daemon is shutting down",
                                                                nlohmann::json::object()});
  // How every run ends: capacity back, the stop reason named, the result
  // sent, the execution retired.
  void
  conclude(const std::shared_ptr<Execution>& execution, CallPermits& permits, ToolResult result);
  void finish(const std::shared_ptr<Execution>& execution, ToolResult result);
  void expire(const std::shared_ptr<Execution>& execution);
  std::vector<std::shared_ptr<Call>> detach(Execution& execution);
  void retire(const std::shared_ptr<Execution>& execution);
  // The one place a call ends: sends its result (once), stores it for
  // replay, counts the outcome and drops the in-flight entry.
  // `replayed`: a stored result, sent again (counted as a replay, not logged
  // or stored again).
  // One result object serves the delivery, the replay store, the reuse cache
  // and the tool-call log: a reply is never copied on its way out.
  void complete(Call& call, std::shared_ptr<const ToolResult> kept, bool replayed = false);
  void complete(Call& call, ToolResult result, bool replayed = false);
  void count(const ToolResult& result) noexcept;
  // Refuses `request` before it runs (and logs it in the tool-call log).
  void reject(const std::shared_ptr<CallSink>& sink,
              const CallRequest& request,
              Errc code,
              const std::string& message,
              const nlohmann::json& details = nlohmann::json::object());
  ToolFailure capacity_failure(const CapacityRejection& rejection, const Execution& execution);
  // Moves an auto call to its fallback plan (metadata says why). False when
  // it has none or already used it.
  static bool take_fallback(Execution& execution, const std::string& reason);
  // `result` with its continuation thread copied under a new id, so a caller
  // that shares another's answer never shares its conversation.
  std::shared_ptr<const ToolResult> own_thread(std::shared_ptr<const ToolResult> result);
  std::string share_key(const CallRequest& request,
                        const nlohmann::json& arguments,
                        const Tool& tool,
                        const CallPlan& plan) const;
  void note_undelivered(const std::string& session_id, const std::string& request_id);

  const DaemonConfig& config_;
  SharedCapacity* const shared_capacity_;
  SharedStore* const shared_store_;
  const ProviderRegistry& providers_;
  const ToolRegistry& tools_;
  ChatBackend& chat_;
  ProviderHttp* http_;
  const Clock::time_point started_;
  ToolVisibility visibility_;
  // Before everything that completes calls: outlives the threads below.
  std::unique_ptr<ToolCallLog> toolcall_log_;
  TtlCache<std::string> uploads_; // DaemonView::uploads
  std::unique_ptr<DaemonView> daemon_view_;
  Histogram call_latency_;
  std::map<std::string, std::unique_ptr<Histogram>, std::less<>> upstream_latency_;
  std::map<std::string, std::unique_ptr<Histogram>, std::less<>> first_token_;
  UsageMeter usage_;
  std::unique_ptr<MeasuredChat> measured_chat_; // chat_ plus the meters above
  FileRoots file_roots_;
  nlohmann::json tool_list_;                                   // list_tools, generated once
  std::map<std::string, nlohmann::json, std::less<>> schemas_; // tool -> inputSchema

  CapacityController capacity_;
  ConversationStore conversations_;
  TtlCache<StoredResult> results_;                    // (session, request_id) -> result
  TtlCache<std::shared_ptr<const ToolResult>> reuse_; // identical-call key -> success
  TtlCache<std::vector<std::string>> undelivered_;    // session -> request ids
  InflightRegistry<Call> inflight_;                   // (session, request_id) -> call
  // (owner, request_id) -> session: with a token configured, every session
  // of the same token may collect a result by request_id (SPEC §3).
  TtlCache<std::string> owned_;

  mutable std::mutex mutex_;
  std::condition_variable drained_;
  std::map<std::string, std::shared_ptr<Execution>, std::less<>> shared_; // guarded by mutex_
  std::set<std::shared_ptr<Execution>> live_;                             // guarded by mutex_
  std::map<std::string, std::size_t, std::less<>> queued_by_session_;     // guarded by mutex_
  std::size_t queued_ = 0;                                                // guarded by mutex_
  std::size_t lookups_running_ = 0; // guarded by mutex_: jobs on lookups_
  // guarded by mutex_: those jobs by session (bounded like calls waiting for
  // capacity; erased at zero)
  std::map<std::string, std::size_t, std::less<>> lookups_by_session_;
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
  Scheduler::Handle sweeper_;
  std::atomic<std::size_t> freed_since_trim_{0};
  std::atomic<std::uint64_t> sweeps_{0};
  std::atomic<std::uint64_t> admitted_calls_{0};
  std::atomic<std::uint64_t> loop_calls_{0};
  // Where submissions read the shared store (Redis), so the caller's thread
  // (the event loop) never waits on the network. Destroyed first.
  ThreadPool lookups_;
};

} // namespace exai::core
