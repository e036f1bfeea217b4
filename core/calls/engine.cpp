#include "core/calls/engine.hpp"

#include "core/calls/frames.hpp"
#include "core/log.hpp"

#include <cmath>

namespace exai::core {

namespace {

constexpr std::string_view kAcceptedNote = "accepted, awaiting provider/session capacity";

double
seconds(std::chrono::milliseconds ms)
{
  return static_cast<double>(ms.count()) / 1000.0;
}

// Results a client may usefully get again by request_id. Capacity
// rejections, cancellations and shutdowns are not stored: retrying the same
// request_id must run the call again.
bool
replayable(const ToolResult& result)
{
  const auto* failure = std::get_if<ToolFailure>(&result);
  return failure == nullptr ||
         (failure->code != Errc::over_capacity && failure->code != Errc::cancelled &&
          failure->code != Errc::shutting_down);
}

} // namespace

// The chat backend as tools see it: records upstream latency per provider.
class Engine::MeasuredChat final : public ChatBackend {
public:
  MeasuredChat(ChatBackend& inner,
               const std::map<std::string, std::unique_ptr<Histogram>, std::less<>>& latency)
      : inner_(inner)
      , latency_(latency)
  {
  }
  ChatOutcome
  complete(std::string_view provider_id, const ChatRequest& request, std::stop_token stop) override
  {
    const auto start = Clock::now();
    ChatOutcome outcome = inner_.complete(provider_id, request, std::move(stop));
    if (const auto it = latency_.find(provider_id); it != latency_.end()) {
      it->second->observe(std::chrono::duration<double>(Clock::now() - start).count());
    }
    return outcome;
  }
  std::string circuit_state(std::string_view provider_id) const override
  {
    return inner_.circuit_state(provider_id);
  }

private:
  ChatBackend& inner_;
  const std::map<std::string, std::unique_ptr<Histogram>, std::less<>>& latency_;
};

// One request_id awaiting its result. Owns its in-flight entry (ticket).
struct Engine::Call {
  std::string request_id;
  std::string session_id;
  std::string tool_name;
  std::string fingerprint; // tool + arguments: a reused request_id must match
  std::chrono::steady_clock::time_point accepted = std::chrono::steady_clock::now();
  std::shared_ptr<Execution> execution;

  std::mutex mutex;
  std::vector<std::weak_ptr<CallSink>> sinks;           // guarded by mutex
  bool finished = false;                                // guarded by mutex
  std::optional<InflightRegistry<Call>::Ticket> ticket; // guarded by mutex

  // Sends a progress or ack frame to every live sink unless the call has
  // finished: nothing may follow a call's call_tool_res.
  void send(const std::string& frame)
  {
    const std::lock_guard lock(mutex);
    if (finished) {
      return;
    }
    for (const auto& weak : sinks) {
      if (auto sink = weak.lock()) {
        sink->send(frame);
      }
    }
  }
  // Adds a listener and sends it `note` first; false once the call has
  // finished (its result is then in the replay store, if it is replayable).
  bool add_sink(const std::shared_ptr<CallSink>& sink, const std::string& note)
  {
    const std::lock_guard lock(mutex);
    if (finished) {
      return false;
    }
    sink->send(note);
    sinks.emplace_back(sink);
    return true;
  }
};

// One run of a tool. Identical calls share it (callers); capacity is taken
// once for it, by the thread running it.
struct Engine::Execution {
  std::string key; // identical-call key; empty when not shared
  const Tool* tool = nullptr;
  CallPlan plan;
  nlohmann::json arguments;
  std::string session_id;
  Clock::time_point acquire_deadline;
  std::stop_source stop;
  std::atomic<Errc> stop_reason{Errc::cancelled};

  std::mutex mutex;
  std::vector<std::shared_ptr<Call>> callers; // guarded by mutex
  bool closed = false;                        // guarded by mutex: no new callers
  bool admitted = false;                      // guarded by mutex
  Scheduler::Handle heartbeat;                // guarded by mutex
  Scheduler::Handle deadline;                 // guarded by mutex

  std::vector<std::shared_ptr<Call>> snapshot()
  {
    const std::lock_guard lock(mutex);
    return callers;
  }
};

Engine::Engine(const EngineDeps& deps)
    : config_(deps.config)
    , providers_(deps.providers)
    , tools_(deps.tools)
    , chat_(deps.chat)
    , started_(Clock::now())
    , capacity_([&] {
      CapacityLimits limits;
      limits.global = deps.config.global_max_inflight;
      limits.session = deps.config.session_max_inflight;
      limits.conversation = deps.config.conversation_max_inflight;
      limits.providers = {{std::string(kKimiProviderId), deps.config.kimi_max_inflight},
                          {std::string(kGlmProviderId), deps.config.glm_max_inflight}};
      return limits;
    }())
    , conversations_(deps.config.conversation_ttl,
                     deps.config.conversation_max,
                     deps.config.conversation_max_turns)
    , results_(deps.config.result_ttl, deps.config.result_cache_max)
    , reuse_(deps.config.result_ttl, deps.config.result_cache_max)
    , undelivered_(deps.config.result_ttl, deps.config.result_cache_max)
    , pool_(deps.config.call_threads)
{
  for (const auto id : {kKimiProviderId, kGlmProviderId}) {
    upstream_latency_.emplace(std::string(id), std::make_unique<Histogram>());
  }
  measured_chat_ = std::make_unique<MeasuredChat>(chat_, upstream_latency_);
}

Engine::~Engine()
{
  shutdown(std::chrono::milliseconds(0));
}

nlohmann::json
Engine::list_tools() const
{
  return tools_.describe();
}

void
Engine::reject(const std::shared_ptr<CallSink>& sink,
               const std::string& request_id,
               Errc code,
               const std::string& message,
               const nlohmann::json& details)
{
  log::get("core")->debug(
      "call rejected request_id={} code={} error=\"{}\"", request_id, protocol_code(code), message);
  sink->send(frames::error_result(request_id, code, message, details));
}

void
Engine::submit(CallRequest request, const std::shared_ptr<CallSink>& sink)
{
  if (!accepting_) {
    reject(sink, request.request_id, Errc::shutting_down, "the daemon is shutting down");
    return;
  }
  const Tool* tool = tools_.find(request.tool);
  if (tool == nullptr) {
    reject(sink,
           request.request_id,
           Errc::tool_not_found,
           "Unknown tool: " + request.tool,
           {{"name", request.tool}});
    return;
  }
  const std::string fingerprint = std::string(tool->name()) + "\n" + request.arguments.dump();

  // A finished call stores its result before it stops accepting listeners,
  // so a request_id is always either replayable, joinable or free.
  if (attach_existing(request, fingerprint, tool->name(), sink)) {
    return;
  }
  CallPlan plan;
  try {
    plan = tool->plan(request.arguments, providers_);
  } catch (const Error& e) {
    reject(sink, request.request_id, e.code(), e.what(), {{"name", tool->name()}});
    return;
  }

  auto call = std::make_shared<Call>();
  call->request_id = request.request_id;
  call->session_id = request.session_id;
  call->tool_name = std::string(tool->name());
  call->fingerprint = fingerprint;
  call->sinks.emplace_back(sink);
  auto ticket = inflight_.insert(request.request_id, call);
  if (!ticket && attach_existing(request, fingerprint, tool->name(), sink)) {
    return; // another connection started the same id meanwhile
  }
  if (!ticket) {
    reject(sink,
           request.request_id,
           Errc::duplicate,
           "request_id " + request.request_id + " is already running",
           {{"request_id", request.request_id}});
    return;
  }
  call->ticket = std::move(ticket);
  call->send(frames::progress(call->request_id, call->tool_name, kAcceptedNote));

  const bool reusable = tool->reusable() && plan.conversation_id.empty() &&
                        config_.disable_coalesce_tools.count(tool->name()) == 0;
  std::string key;
  if (reusable) {
    key = call->tool_name + "\n" + plan.provider + "\n" + plan.model + "\n" +
          request.arguments.dump();
    if (auto outputs = reuse_.get(key)) {
      ++counters_.cache_hits;
      call->send(frames::ack(call->request_id, call->tool_name, seconds(config_.call_timeout)));
      complete(*call, ToolSuccess{std::move(*outputs)});
      return;
    }
  }

  auto execution = std::make_shared<Execution>();
  {
    const std::lock_guard lock(mutex_);
    if (reusable) {
      if (const auto it = shared_.find(key); it != shared_.end()) {
        Execution& leader = *it->second;
        const std::lock_guard exec_lock(leader.mutex);
        if (!leader.closed) {
          call->execution = it->second;
          leader.callers.push_back(call);
          ++counters_.coalesced;
          if (leader.admitted) {
            call->send(
                frames::ack(call->request_id, call->tool_name, seconds(config_.call_timeout)));
          }
          return;
        }
      }
      execution->key = key;
      shared_[key] = execution;
    }
    live_.insert(execution);
  }
  execution->tool = tool;
  execution->plan = std::move(plan);
  execution->arguments = std::move(request.arguments);
  execution->session_id = request.session_id;
  execution->acquire_deadline = Clock::now() + config_.acquire_timeout;
  execution->callers.push_back(call);
  call->execution = execution;
  start(execution);
}

bool
Engine::attach_existing(const CallRequest& request,
                        const std::string& fingerprint,
                        std::string_view tool_name,
                        const std::shared_ptr<CallSink>& sink)
{
  // A stored result is replayed only for the same call: a client that reuses
  // an id for a different call (e.g. per-connection counters) runs it afresh.
  const auto replay = [&] {
    auto stored = results_.get(request.request_id);
    if (!stored || stored->fingerprint != fingerprint) {
      return false;
    }
    sink->send(std::move(stored->frame));
    ++counters_.replayed;
    return true;
  };
  if (replay()) {
    return true;
  }
  auto running = inflight_.find(request.request_id);
  if (!running) {
    return false;
  }
  if (running->fingerprint != fingerprint) {
    reject(sink,
           request.request_id,
           Errc::duplicate,
           "request_id " + request.request_id + " is already in use by a different call",
           {{"request_id", request.request_id}});
    return true;
  }
  if (running->add_sink(sink,
                        frames::progress(request.request_id,
                                         tool_name,
                                         "already running; the result will be delivered here"))) {
    return true;
  }
  // It finished between the two look-ups: replay it if it was stored.
  return replay();
}

void
Engine::start(const std::shared_ptr<Execution>& execution)
{
  // Tools that call no model are quick: run them on this thread when
  // capacity is free right now, sparing a thread hop and the timers.
  if (execution->plan.provider.empty()) {
    auto admitted = capacity_.acquire({execution->session_id, execution->plan.conversation_id, ""},
                                      Clock::now(),
                                      execution->stop.get_token());
    if (auto* permits = std::get_if<CallPermits>(&admitted)) {
      run(execution, std::move(*permits));
      return;
    }
  }
  {
    const std::lock_guard lock(execution->mutex);
    execution->heartbeat =
        scheduler_.every(config_.progress_interval, [weak = std::weak_ptr(execution)] {
          if (auto exec = weak.lock()) {
            for (const auto& call : exec->snapshot()) {
              call->send(frames::progress(call->request_id, call->tool_name));
            }
          }
        });
  }
  if (pool_.queued() >= config_.max_queued ||
      !pool_.post([this, execution] { run(execution, std::nullopt); })) {
    finish(execution,
           capacity_failure(CapacityRejection{Scope::global, "", AcquireStatus::timed_out},
                            *execution));
    retire(execution);
  }
}

ToolFailure
Engine::capacity_failure(const CapacityRejection& rejection, const Execution& execution)
{
  if (rejection.status == AcquireStatus::cancelled) {
    const Errc reason = execution.stop_reason.load();
    return ToolFailure{reason,
                       reason == Errc::shutting_down ? "the daemon is shutting down"
                                                     : "cancelled while waiting for capacity",
                       nlohmann::json::object()};
  }
  const auto scope = std::string(scope_name(rejection.scope));
  nlohmann::json details = {{"scope", scope}, {"retry_after", 2}};
  details["provider"] =
      rejection.provider.empty() ? nlohmann::json(nullptr) : nlohmann::json(rejection.provider);
  ++counters_.rejected.at(static_cast<std::size_t>(rejection.scope));
  log::get("core")->warn("capacity exhausted scope={} provider={} session={}",
                         scope,
                         rejection.provider,
                         execution.session_id);
  return ToolFailure{Errc::over_capacity,
                     "no " + scope + " capacity within " +
                         std::to_string(config_.acquire_timeout.count()) + " ms",
                     details};
}

void
Engine::run(const std::shared_ptr<Execution>& execution, std::optional<CallPermits> permits)
{
  const bool inline_run = permits.has_value();
  if (!permits) {
    auto acquired = capacity_.acquire(
        {execution->session_id, execution->plan.conversation_id, execution->plan.provider},
        execution->acquire_deadline,
        execution->stop.get_token(),
        [&](Scope scope, const std::string& provider) {
          const std::string note = "waiting for " + std::string(scope_name(scope)) + " capacity" +
                                   (provider.empty() ? "" : " (" + provider + ")");
          for (const auto& call : execution->snapshot()) {
            call->send(frames::progress(call->request_id, call->tool_name, note));
          }
        });
    if (auto* rejection = std::get_if<CapacityRejection>(&acquired)) {
      finish(execution, capacity_failure(*rejection, *execution));
      retire(execution);
      return;
    }
    permits.emplace(std::move(std::get<CallPermits>(acquired)));
  }

  std::vector<std::shared_ptr<Call>> admitted;
  {
    const std::lock_guard lock(execution->mutex);
    execution->admitted = true;
    admitted = execution->callers; // later joiners see `admitted` and ack themselves
    if (!inline_run) {
      execution->deadline = scheduler_.at(Clock::now() + config_.call_timeout,
                                          [this, weak = std::weak_ptr(execution)] {
                                            if (auto exec = weak.lock()) {
                                              expire(exec);
                                            }
                                          });
    }
  }
  for (const auto& call : admitted) {
    call->send(frames::ack(call->request_id, call->tool_name, seconds(config_.call_timeout)));
  }
  admitted.clear();

  ToolResult result = ToolFailure{Errc::internal_error, "tool did not run", {}};
  try {
    ToolContext context{execution->arguments,
                        execution->plan,
                        execution->stop.get_token(),
                        *measured_chat_,
                        providers_,
                        conversations_,
                        [this] { return status_json(); }};
    result = execution->tool->run(context);
  } catch (const Error& e) {
    result = ToolFailure{e.code(), e.what(), nlohmann::json::object()};
  } catch (const std::exception& e) {
    log::get("core")->error("tool crashed tool={} error=\"{}\"", execution->tool->name(), e.what());
    result = ToolFailure{Errc::internal_error, "internal error in tool", nlohmann::json::object()};
  }
  // Capacity goes back before anyone hears of the result, so a client that
  // sends its next call at once finds it free.
  permits->reset();
  if (execution->stop.stop_requested()) {
    const Errc reason = execution->stop_reason.load();
    if (auto* failure = std::get_if<ToolFailure>(&result);
        failure != nullptr && failure->code == Errc::cancelled) {
      failure->code = reason;
    }
  }
  finish(execution, result);
  retire(execution);
}

std::vector<std::shared_ptr<Engine::Call>>
Engine::detach(Execution& execution)
{
  {
    const std::lock_guard lock(mutex_);
    if (!execution.key.empty()) {
      const auto it = shared_.find(execution.key);
      if (it != shared_.end() && it->second.get() == &execution) {
        shared_.erase(it);
      }
    }
  }
  Scheduler::Handle heartbeat;
  Scheduler::Handle deadline;
  std::vector<std::shared_ptr<Call>> callers;
  {
    const std::lock_guard lock(execution.mutex);
    execution.closed = true;
    callers.swap(execution.callers);
    heartbeat = std::move(execution.heartbeat);
    deadline = std::move(execution.deadline);
  }
  // The handles cancel their timers here, outside the execution's lock (a
  // running heartbeat takes that lock).
  return callers;
}

void
Engine::finish(const std::shared_ptr<Execution>& execution, const ToolResult& result)
{
  if (!execution->key.empty() && std::holds_alternative<ToolSuccess>(result)) {
    reuse_.put(execution->key, std::get<ToolSuccess>(result).outputs);
  }
  for (const auto& call : detach(*execution)) {
    complete(*call, result);
  }
}

void
Engine::expire(const std::shared_ptr<Execution>& execution)
{
  execution->stop_reason = Errc::timeout;
  execution->stop.request_stop();
  const ToolFailure timeout{Errc::timeout,
                            "call exceeded its " + std::to_string(seconds(config_.call_timeout)) +
                                " s deadline",
                            {{"timeout", seconds(config_.call_timeout)}}};
  for (const auto& call : detach(*execution)) {
    complete(*call, timeout);
  }
}

void
Engine::retire(const std::shared_ptr<Execution>& execution)
{
  {
    const std::lock_guard lock(mutex_);
    live_.erase(execution);
  }
  drained_.notify_all();
}

void
Engine::complete(Call& call, const ToolResult& result)
{
  std::string frame;
  if (const auto* success = std::get_if<ToolSuccess>(&result)) {
    frame = frames::result(call.request_id, success->outputs);
  } else {
    const auto& failure = std::get<ToolFailure>(result);
    frame = frames::error_result(call.request_id, failure.code, failure.message, failure.details);
  }
  bool delivered = false;
  const bool store = replayable(result);
  {
    const std::lock_guard lock(call.mutex);
    if (call.finished) {
      return; // another path already produced this call's one result
    }
    // Stored before `finished` is set, so a resubmitted request_id always
    // finds either the running call or its stored result.
    if (store) {
      results_.put(call.request_id, StoredResult{call.fingerprint, frame});
    }
    call.finished = true;
    count(result);
    // The id is free before anyone hears the result, so a client may reuse
    // it at once.
    if (call.ticket) {
      call.ticket->reset();
    }
    for (const auto& weak : call.sinks) {
      if (auto sink = weak.lock()) {
        sink->send(frame);
        delivered = true;
      }
    }
  }
  call_latency_.observe(std::chrono::duration<double>(Clock::now() - call.accepted).count());
  if (store) {
    if (!delivered) {
      auto pending = undelivered_.get(call.session_id).value_or(std::vector<std::string>{});
      pending.push_back(call.request_id);
      undelivered_.put(call.session_id, std::move(pending));
    }
  }
  drained_.notify_all(); // wake shutdown()
}

void
Engine::count(const ToolResult& result) noexcept
{
  if (std::holds_alternative<ToolSuccess>(result)) {
    ++counters_.ok;
    return;
  }
  switch (std::get<ToolFailure>(result).code) {
  case Errc::timeout:
    ++counters_.timed_out;
    break;
  case Errc::cancelled:
    ++counters_.cancelled;
    break;
  case Errc::shutting_down:
    ++counters_.shut_down;
    break;
  case Errc::over_capacity:
    break; // counted by scope in capacity_failure()
  default:
    ++counters_.failed;
  }
}

bool
Engine::cancel(std::string_view session_id, std::string_view request_id)
{
  auto call = inflight_.find(std::string(request_id));
  if (!call || call->session_id != session_id) {
    return false;
  }
  auto execution = call->execution;
  bool last = false;
  {
    const std::lock_guard lock(execution->mutex);
    auto& callers = execution->callers;
    std::erase(callers, call);
    last = callers.empty();
  }
  complete(*call,
           ToolFailure{Errc::cancelled, "cancelled by the client", nlohmann::json::object()});
  if (last) {
    execution->stop_reason = Errc::cancelled;
    execution->stop.request_stop();
    (void)detach(*execution);
  }
  return true;
}

void
Engine::attach_session(const std::string& session_id, const std::shared_ptr<CallSink>& sink)
{
  for (const auto& call : inflight_.all()) {
    if (call->session_id == session_id) {
      (void)call->add_sink(
          sink, frames::progress(call->request_id, call->tool_name, "resumed; still running"));
    }
  }
  if (auto pending = undelivered_.get(session_id)) {
    undelivered_.put(session_id, {});
    for (const auto& request_id : *pending) {
      if (auto stored = results_.get(request_id)) {
        sink->send(std::move(stored->frame));
      }
    }
  }
}

void
Engine::shutdown(std::chrono::milliseconds grace)
{
  accepting_ = false;
  std::unique_lock lock(mutex_);
  drained_.wait_for(lock, grace, [this] { return live_.empty(); });
  const std::vector<std::shared_ptr<Execution>> remaining(live_.begin(), live_.end());
  lock.unlock();
  for (const auto& execution : remaining) {
    execution->stop_reason = Errc::shutting_down;
    execution->stop.request_stop();
    const ToolFailure failure{
        Errc::shutting_down, "the daemon is shutting down", nlohmann::json::object()};
    for (const auto& call : detach(*execution)) {
      complete(*call, failure);
    }
  }
  lock.lock();
  // Stopped tools return promptly; each releases its capacity on the way out.
  drained_.wait(lock, [this] { return live_.empty(); });
}

EngineStats
Engine::stats() const
{
  EngineStats s;
  s.capacity = capacity_.snapshot();
  s.inflight_calls = inflight_.size();
  s.queued = pool_.queued();
  s.cached_results = results_.size();
  s.conversations = conversations_.size();
  s.scheduled_timers = scheduler_.size();
  s.accepting = accepting_;
  s.call_latency = call_latency_.snapshot();
  for (const auto& [id, histogram] : upstream_latency_) {
    s.upstream_latency.emplace(id, histogram->snapshot());
    s.circuits.emplace(id, chat_.circuit_state(id));
  }
  const std::lock_guard lock(mutex_);
  s.executions = live_.size();
  s.counters.ok = counters_.ok;
  s.counters.failed = counters_.failed;
  s.counters.timed_out = counters_.timed_out;
  s.counters.cancelled = counters_.cancelled;
  s.counters.shut_down = counters_.shut_down;
  s.counters.replayed = counters_.replayed;
  s.counters.coalesced = counters_.coalesced;
  s.counters.cache_hits = counters_.cache_hits;
  for (const Scope scope : {Scope::conversation, Scope::session, Scope::global, Scope::provider}) {
    s.counters.rejected[std::string(scope_name(scope))] =
        counters_.rejected.at(static_cast<std::size_t>(scope));
  }
  return s;
}

nlohmann::json
Engine::status_json() const
{
  const EngineStats s = stats();
  const auto uptime =
      std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - started_).count();
  nlohmann::json providers = nlohmann::json::object();
  for (const auto& [id, limiter] : s.capacity.providers) {
    providers[id] = {{"capacity", limiter.capacity}, {"in_use", limiter.in_use}};
  }
  return {
      {"uptime_s", uptime},
      {"global", {{"capacity", s.capacity.global.capacity}, {"in_use", s.capacity.global.in_use}}},
      {"provider_capacity", providers},
      {"inflight_calls", s.inflight_calls},
      {"cached_results", s.cached_results},
      {"calls_ok", s.counters.ok},
      {"calls_failed", s.counters.failed}};
}

} // namespace exai::core
