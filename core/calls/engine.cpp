#include "core/calls/engine.hpp"

#include "core/log.hpp"
#include "core/tools/argument_check.hpp"
#include "core/tools/model_call.hpp"
#include "core/tools/partial_progress.hpp"
#include "core/util/free_memory.hpp"
#include "core/util/scope_exit.hpp"
#include "core/util/text.hpp"

#include <cmath>
#include <functional>

namespace exai::core {

namespace {

constexpr std::string_view kAcceptedNote = "accepted, awaiting provider/session capacity";
// Returning freed memory to the OS costs a walk of the heap: only after a
// sweep freed at least this much.
constexpr std::size_t kTrimAfterBytes = std::size_t{4} << 20U;
constexpr auto kSweepPeriod = std::chrono::seconds(5);
constexpr std::uint64_t kTrimEvery = 2; // sweeps: about every 10 s
// Submissions reading the shared store at once; Redis answers one command at
// a time per connection, so more threads would mostly wait there.
constexpr std::size_t kLookupThreads = 4;

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

// Request ids belong to their session: every map of calls is keyed by both.
std::string
call_key(std::string_view session_id, std::string_view request_id)
{
  std::string key;
  key.reserve(session_id.size() + 1 + request_id.size());
  key.append(session_id).append(1, '\n').append(request_id);
  return key;
}

// Identifies "the same call" for replay by request_id. A hash is enough:
// both calls already share the session and the request id.
std::uint64_t
fingerprint_of(std::string_view tool, const nlohmann::json& arguments)
{
  const std::string text = std::string(tool) + "\n" +
                           arguments.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return std::hash<std::string>{}(text);
}

// A replayable result as the shared store keeps it.
std::string
stored_result_text(std::uint64_t fingerprint, const ToolResult& result)
{
  nlohmann::json doc = {{"fingerprint", std::to_string(fingerprint)}};
  if (const auto* success = std::get_if<ToolSuccess>(&result)) {
    doc["outputs"] = success->outputs;
  } else {
    const auto& failure = std::get<ToolFailure>(result);
    doc["code"] = static_cast<int>(failure.code);
    doc["message"] = failure.message;
    doc["details"] = failure.details;
  }
  return doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// The result in `text` when it was stored for `fingerprint`.
std::optional<ToolResult>
parse_stored_result(const std::string& text, std::uint64_t fingerprint)
{
  const auto doc = nlohmann::json::parse(text, nullptr, false);
  if (!doc.is_object()) {
    return std::nullopt;
  }
  try {
    if (doc.value("fingerprint", "") != std::to_string(fingerprint)) {
      return std::nullopt;
    }
    if (doc.contains("outputs")) {
      return ToolResult(ToolSuccess{doc.at("outputs").get<std::vector<std::string>>()});
    }
    return ToolResult(ToolFailure{static_cast<Errc>(doc.at("code").get<int>()),
                                  doc.at("message").get<std::string>(),
                                  doc.at("details")});
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

} // namespace

// The chat backend as tools see it: records upstream latency and time to
// first token per provider, and token usage per provider and model.
class Engine::MeasuredChat final : public ChatBackend {
public:
  using Histograms = std::map<std::string, std::unique_ptr<Histogram>, std::less<>>;
  MeasuredChat(ChatBackend& inner,
               const Histograms& latency,
               const Histograms& first_token,
               UsageMeter& usage)
      : inner_(inner)
      , latency_(latency)
      , first_token_(first_token)
      , usage_(usage)
  {
  }
  ChatOutcome
  complete(std::string_view provider_id, const ChatRequest& request, std::stop_token stop) override
  {
    const auto began = Clock::now();
    ChatOutcome outcome = inner_.complete(provider_id, request, std::move(stop));
    observe(provider_id, request.model, began, outcome);
    return outcome;
  }
  bool start(std::string_view provider_id,
             ChatRequest request,
             std::stop_token stop,
             ChatDone done) override
  {
    std::string model = request.model;
    return inner_.start(provider_id,
                        std::move(request),
                        std::move(stop),
                        [this,
                         provider = std::string(provider_id),
                         model = std::move(model),
                         began = Clock::now(),
                         done = std::move(done)](ChatOutcome outcome) {
                          observe(provider, model, began, outcome);
                          done(std::move(outcome));
                        });
  }
  bool starts_here() const override { return inner_.starts_here(); }
  std::string circuit_state(std::string_view provider_id) const override
  {
    return inner_.circuit_state(provider_id);
  }
  UpstreamPoolStats pool_stats(std::string_view provider_id) const override
  {
    return inner_.pool_stats(provider_id);
  }

private:
  void observe(std::string_view provider_id,
               const std::string& model,
               Clock::time_point began,
               const ChatOutcome& outcome)
  {
    if (const auto it = latency_.find(provider_id); it != latency_.end()) {
      it->second->observe(std::chrono::duration<double>(Clock::now() - began).count());
    }
    if (const auto* reply = std::get_if<ChatReply>(&outcome)) {
      if (const auto it = first_token_.find(provider_id);
          it != first_token_.end() && reply->time_to_first_token) {
        it->second->observe(std::chrono::duration<double>(*reply->time_to_first_token).count());
      }
      if (reply->usage.is_object() && !reply->usage.empty()) {
        // The requested (catalog) name: bounded label values, and the price table's key.
        usage_.record(provider_id, model, token_usage(reply->usage));
      }
    }
  }

  ChatBackend& inner_;
  const Histograms& latency_;
  const Histograms& first_token_;
  UsageMeter& usage_;
};

// One request_id of one session awaiting its result. Owns its in-flight
// entry (ticket).
struct Engine::Call {
  std::string key; // call_key(session_id, request_id)
  std::string request_id;
  std::string session_id;
  std::string tool_name;
  std::string model; // the plan's, for the tool-call log
  std::string provider;
  std::shared_ptr<const nlohmann::json> arguments;
  std::uint64_t fingerprint = 0; // tool + arguments: a reused request_id must match
  std::string store_key;         // of its result in the shared store; "" = none
  std::chrono::steady_clock::time_point accepted = std::chrono::steady_clock::now();
  std::mutex mutex;
  // Set after the call is in flight (so cancel() can see it without one).
  std::shared_ptr<Execution> execution;                 // guarded by mutex
  std::vector<std::weak_ptr<CallSink>> sinks;           // guarded by mutex
  bool finished = false;                                // guarded by mutex
  std::optional<InflightRegistry<Call>::Ticket> ticket; // guarded by mutex

  // Sends a progress note to every live sink unless the call has finished:
  // nothing may follow a call's result.
  void progress(std::string_view note)
  {
    const std::lock_guard lock(mutex);
    if (finished) {
      return;
    }
    for (const auto& weak : sinks) {
      if (auto sink = weak.lock()) {
        sink->on_progress(request_id, tool_name, note);
      }
    }
  }
  void run_in(std::shared_ptr<Execution> run)
  {
    const std::lock_guard lock(mutex);
    execution = std::move(run);
  }
  std::shared_ptr<Execution> running_in()
  {
    const std::lock_guard lock(mutex);
    return execution;
  }
  void ack(std::chrono::milliseconds timeout)
  {
    const std::lock_guard lock(mutex);
    if (finished) {
      return;
    }
    for (const auto& weak : sinks) {
      if (auto sink = weak.lock()) {
        sink->on_ack(request_id, tool_name, timeout);
      }
    }
  }
  // Adds a listener and sends it `note` first; false once the call has
  // finished (its result is then in the replay store, if it is replayable).
  bool add_sink(const std::shared_ptr<CallSink>& sink, std::string_view note)
  {
    const std::lock_guard lock(mutex);
    if (finished) {
      return false;
    }
    sink->on_progress(request_id, tool_name, note);
    // The same connection asking again gets the note, not a second result.
    for (const auto& weak : sinks) {
      if (weak.lock() == sink) {
        return true;
      }
    }
    sinks.emplace_back(sink);
    return true;
  }
};

// Whether the shared store has answered a new call's request_id lookup.
struct Engine::StoreLookup {
  std::mutex mutex;
  std::condition_variable changed;
  bool answered = false; // guarded by mutex

  void answer()
  {
    const std::lock_guard lock(mutex);
    answered = true;
    changed.notify_all();
  }
  void wait()
  {
    std::unique_lock lock(mutex);
    changed.wait(lock, [this] { return answered; });
  }
  bool done()
  {
    const std::lock_guard lock(mutex);
    return answered;
  }
};

namespace {

// Set while a call thread takes a call's capacity (Engine::acquire()).
thread_local bool t_call_thread = false;

struct CallThread {
  CallThread() { t_call_thread = true; }
  ~CallThread() { t_call_thread = false; }
  CallThread(const CallThread&) = delete;
  CallThread& operator=(const CallThread&) = delete;
};

// Waiters counted by session and in all, each session forgotten at zero.
using SessionCounts = std::map<std::string, std::size_t, std::less<>>;

// Takes a place for a waiter of `session` in a queue bounded per session
// (EXAI_WS_SESSION_MAX_QUEUED) and in all (EXAI_WS_MAX_QUEUED); when one
// bound is reached, counts nothing and names its scope.
std::optional<Scope>
take_place(const DaemonConfig& config,
           SessionCounts& by_session,
           std::size_t& all,
           const std::string& session)
{
  std::optional<Scope> full;
  auto& mine = by_session[session];
  if (config.session_max_queued > 0 && mine >= config.session_max_queued) {
    full = Scope::session;
  } else if (config.max_queued > 0 && all >= config.max_queued) {
    full = Scope::global;
  } else {
    ++mine;
    ++all;
  }
  if (mine == 0) {
    by_session.erase(session);
  }
  return full;
}

// Gives back a place take_place() counted.
void
leave_place(SessionCounts& by_session, std::size_t& all, const std::string& session)
{
  --all;
  if (const auto it = by_session.find(session); it != by_session.end() && --it->second == 0) {
    by_session.erase(it);
  }
}

// Why take_place() refused: "too many <waiting> ... are waiting for <what>",
// naming the bound.
std::string
queue_full_message(const DaemonConfig& config,
                   Scope full,
                   std::string_view waiting,
                   std::string_view what)
{
  return full == Scope::session
             ? "too many " + std::string(waiting) + " of this session are waiting for " +
                   std::string(what) +
                   " (EXAI_WS_SESSION_MAX_QUEUED=" + std::to_string(config.session_max_queued) + ")"
             : "too many " + std::string(waiting) + " are waiting for " + std::string(what) +
                   " (EXAI_WS_MAX_QUEUED=" + std::to_string(config.max_queued) + ")";
}

} // namespace

// One run of a tool. Identical calls share it (callers); capacity is taken
// once for it, then held by the thread running it.
struct Engine::Execution : std::enable_shared_from_this<Execution> {
  std::string key; // identical-call key; empty when not shared
  const Tool* tool = nullptr;
  CallPlan plan;
  std::shared_ptr<const nlohmann::json> arguments; // shared with its calls
  std::string session_id;
  Clock::time_point acquire_deadline;
  std::stop_source stop;
  std::atomic<Errc> stop_reason{Errc::cancelled};

  std::mutex mutex;
  std::vector<std::shared_ptr<Call>> callers; // guarded by mutex
  bool closed = false;                        // guarded by mutex: no new callers
  bool admitted = false;                      // guarded by mutex
  bool starting = false;                      // guarded by mutex: inside acquire_async()
  std::optional<AcquireOutcome> early;        // guarded by mutex: outcome known while starting
  Scheduler::Handle heartbeat;                // guarded by mutex
  Scheduler::Handle deadline;                 // guarded by mutex
  std::string waiting_for;                    // guarded by mutex: the full scope, once one was
  std::atomic<bool> granted{false};           // holds its capacity (runs next)
  std::atomic<bool> streaming{false};         // a streamed answer has begun
  // Set before start(): the tool runs only once the store has answered.
  std::shared_ptr<StoreLookup> lookup;
  // With shared capacity: whose result the global lease's round trip reads.
  std::weak_ptr<Call> lookup_call;

  std::vector<std::shared_ptr<Call>> snapshot()
  {
    const std::lock_guard lock(mutex);
    return callers;
  }
};

Engine::Engine(const EngineDeps& deps)
    : config_(deps.config)
    , shared_capacity_(deps.shared)
    , shared_store_(deps.store)
    , providers_(deps.providers)
    , tools_(deps.tools)
    , chat_(deps.chat)
    , http_(deps.http)
    , started_(Clock::now())
    , visibility_(deps.config, deps.tools)
    , uploads_(std::chrono::hours(24), 4096)
    , usage_(deps.config.prices)
    , file_roots_(deps.config.file_roots)
    , tool_list_(deps.tools.describe(deps.providers))
    , capacity_([&] {
      CapacityLimits limits;
      limits.global = deps.config.global_max_inflight;
      limits.session = deps.config.session_max_inflight;
      limits.conversation = deps.config.conversation_max_inflight;
      limits.providers = {{std::string(kKimiProviderId), deps.config.kimi_max_inflight},
                          {std::string(kGlmProviderId), deps.config.glm_max_inflight}};
      limits.shared = deps.shared;
      return limits;
    }())
    , conversations_(deps.config.conversation_ttl,
                     deps.config.conversation_max,
                     deps.config.conversation_max_bytes,
                     deps.config.conversation_max_turns)
    , results_(deps.config.result_ttl,
               deps.config.result_cache_max,
               deps.config.result_max_bytes,
               [](const std::string& key, const StoredResult& stored) {
                 return key.size() + result_bytes(*stored.result);
               })
    , reuse_(deps.config.result_ttl,
             deps.config.result_cache_max,
             deps.config.reuse_max_bytes,
             [](const std::string& key, const std::shared_ptr<const ToolResult>& result) {
               return key.size() + result_bytes(*result);
             })
    , undelivered_(deps.config.result_ttl,
                   deps.config.result_cache_max,
                   deps.config.result_max_bytes,
                   [](const std::string& key, const std::vector<std::string>& ids) {
                     std::size_t bytes = key.size() + 32;
                     for (const auto& id : ids) {
                       bytes += id.size() + 32;
                     }
                     return bytes;
                   })
    , owned_(deps.config.result_ttl,
             deps.config.result_cache_max,
             deps.config.result_max_bytes / 16,
             [](const std::string& key, const std::string& session) {
               return key.size() + session.size() + 64;
             })
    , pool_(deps.config.call_threads)
    , lookups_(kLookupThreads)
{
  if (shared_store_ != nullptr) {
    conversations_.share(shared_store_, config_.redis_prefix + "conv:");
    if (shared_capacity_ != nullptr) {
      // With the releaser's next batch: a chat turn costs no round trip of its own.
      conversations_.write_behind(
          [this](std::string key, std::string value, std::chrono::milliseconds ttl) {
            shared_capacity_->write_behind({std::move(key), std::move(value), ttl});
          });
    }
  }
  for (const auto& name : visibility_.unknown_names()) {
    log::get("core")->warn("DISABLED_TOOLS/LEAN_TOOLS names no tool: {} (ignored)", name);
  }
  // Hidden tools are neither listed nor callable (submit() says why).
  nlohmann::json visible = nlohmann::json::array();
  for (auto& tool : tool_list_) {
    if (visibility_.visible(tool["name"].get<std::string>())) {
      visible.push_back(std::move(tool));
    }
  }
  tool_list_ = std::move(visible);
  if (!config_.state_dir.empty()) {
    ToolCallLog::Options log_options;
    log_options.path = config_.state_dir + "/toolcalls.jsonl";
    log_options.max_bytes = config_.toolcall_log_max_bytes;
    log_options.keep = config_.toolcall_log_keep;
    log_options.content = config_.toolcall_log_content;
    log_options.recent_content = config_.ui_show_content;
    for (const auto& provider : providers_.providers()) {
      log_options.secrets.push_back(provider.api_key);
    }
    if (!config_.token.empty()) {
      log_options.secrets.push_back(config_.token);
    }
    toolcall_log_ = std::make_unique<ToolCallLog>(std::move(log_options));
  }
  daemon_view_ = std::make_unique<DaemonView>(
      DaemonView{tools_, visibility_, toolcall_log_.get(), {}, uploads_});
  for (const auto& tool : tool_list_) {
    schemas_.emplace(tool["name"].get<std::string>(), tool["inputSchema"]);
  }
  for (const auto id : {kKimiProviderId, kGlmProviderId}) {
    upstream_latency_.emplace(std::string(id), std::make_unique<Histogram>());
    first_token_.emplace(std::string(id), std::make_unique<Histogram>());
  }
  measured_chat_ = std::make_unique<MeasuredChat>(chat_, upstream_latency_, first_token_, usage_);
  sweeper_ = scheduler_.every(std::chrono::duration_cast<std::chrono::milliseconds>(kSweepPeriod),
                              [this] { sweep(); });
}

Engine::~Engine()
{
  shutdown(std::chrono::milliseconds(0));
}

void
Engine::set_health_source(std::function<nlohmann::json()> health)
{
  daemon_view_->health = std::move(health);
}

nlohmann::json
Engine::list_tools() const
{
  return tool_list_;
}

void
Engine::sweep()
{
  results_.purge();
  reuse_.purge();
  undelivered_.purge();
  owned_.purge();
  conversations_.purge();
  // Whatever dropped entries since the last sweep (expiry here or on any
  // access, eviction, replacement) counts.
  freed_since_trim_ += results_.take_freed() + reuse_.take_freed() + undelivered_.take_freed() +
                       owned_.take_freed() + conversations_.take_freed();
  // Connections and requests free memory too (not only the stores): trim
  // when the stores freed a lot, and anyway every kTrimEvery sweeps.
  if (freed_since_trim_.load() >= kTrimAfterBytes || ++sweeps_ % kTrimEvery == 0) {
    freed_since_trim_ = 0;
    // Large results live in large allocations; give their pages back so a
    // burst's memory does not stay with the process.
    release_free_memory();
  }
}

void
Engine::reject(const std::shared_ptr<CallSink>& sink,
               const CallRequest& request,
               Errc code,
               const std::string& message,
               const nlohmann::json& details)
{
  log::get("core")->debug("call rejected request_id={} code={} error=\"{}\"",
                          printable(request.request_id, 64),
                          protocol_code(code),
                          printable(message, 200));
  auto result = std::make_shared<const ToolResult>(ToolFailure{code, message, details});
  const ToolResult& sent = *result;
  if (toolcall_log_) {
    toolcall_log_->record(ToolCallRecord{std::chrono::system_clock::now(),
                                         request.session_id,
                                         request.request_id,
                                         printable(request.tool, 64),
                                         {},
                                         {},
                                         std::chrono::milliseconds(0),
                                         nullptr,
                                         result});
  }
  sink->on_result(request.request_id, sent);
}

std::string
Engine::share_key(const CallRequest& request,
                  const nlohmann::json& arguments,
                  const Tool& tool,
                  const CallPlan& plan) const
{
  std::string scope;
  switch (config_.reuse_scope) {
  case ReuseScope::session:
    scope = "s:" + request.session_id;
    break;
  case ReuseScope::token:
    scope = "t:" + request.owner;
    break;
  case ReuseScope::global:
    scope = "g";
    break;
  }
  return scope + "\n" + std::string(tool.name()) + "\n" + plan.provider + "\n" + plan.model + "\n" +
         arguments.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void
Engine::submit(CallRequest request, const std::shared_ptr<CallSink>& sink)
{
  if (!accepting_) {
    reject(sink, request, Errc::shutting_down, "the daemon is shutting down");
    return;
  }
  const Tool* tool = tools_.find(request.tool);
  if (tool == nullptr) {
    reject(sink,
           request,
           Errc::tool_not_found,
           "Unknown tool: " + request.tool,
           {{"name", request.tool}, {"requested_tool", request.tool}});
    return;
  }
  if (const auto hidden = visibility_.hidden_reason(tool->name())) {
    reject(sink,
           request,
           Errc::tool_not_found,
           "Tool " + request.tool + " is not available: " + *hidden,
           {{"name", request.tool}, {"requested_tool", request.tool}, {"reason", *hidden}});
    return;
  }
  // Planning a continued conversation reads the thread from the shared store:
  // not on this (the event loop's) thread. Everything else is planned here; its
  // result lookup rides on the capacity wait (start(), or look_up_result()
  // when capacity is not shared).
  const auto continued = request.arguments.find("continuation_id");
  if (shared_store_ == nullptr || continued == request.arguments.end() || !continued->is_string() ||
      continued->get_ref<const std::string&>().empty()) {
    submit_known(std::move(request), sink, *tool);
    return;
  }
  // A store that answers slowly backs these jobs up: they are bounded as calls
  // waiting for capacity are, so bogus continuation_ids from one client
  // neither grow memory without bound nor delay other sessions' lookups.
  std::optional<Scope> full;
  {
    const std::lock_guard lock(mutex_);
    full = take_place(config_, lookups_by_session_, lookups_running_, request.session_id);
  }
  if (full) {
    reject(sink,
           request,
           Errc::over_capacity,
           queue_full_message(config_, *full, "continued calls", "the shared store"),
           {{"queue_full", true}});
    return;
  }
  const auto looked_up = [this](const std::string& session_id) {
    const std::lock_guard lock(mutex_);
    leave_place(lookups_by_session_, lookups_running_, session_id);
    drained_.notify_all();
  };
  // Shared with the job: a refused post must still answer the request.
  auto pending = std::make_shared<CallRequest>(std::move(request));
  const bool posted = lookups_.post([this, pending, sink, tool, looked_up] {
    // Its place is given back however submit_known() ends.
    const ScopeExit leave(
        [&looked_up, session_id = pending->session_id] { looked_up(session_id); });
    submit_known(std::move(*pending), sink, *tool);
  });
  if (!posted) {
    reject(sink, *pending, Errc::shutting_down, "the daemon is shutting down");
    looked_up(pending->session_id);
  }
}

void
Engine::submit_known(CallRequest request, const std::shared_ptr<CallSink>& sink, const Tool& known)
{
  if (!accepting_) {
    reject(sink, request, Errc::shutting_down, "the daemon is shutting down");
    return;
  }
  const Tool* tool = &known;
  const std::string key = call_key(request.session_id, request.request_id);
  const std::uint64_t fingerprint = fingerprint_of(tool->name(), request.arguments);

  // A finished call stores its result before it stops accepting listeners,
  // so a request_id is always either replayable, joinable or free.
  if (attach_existing(request, key, fingerprint, sink)) {
    return;
  }
  CallPlan plan;
  try {
    check_arguments(tool->name(), schemas_.find(tool->name())->second, request.arguments);
    plan = tool->plan(PlanInput{request.arguments, providers_, conversations_});
  } catch (const Error& e) {
    nlohmann::json details = e.details();
    details["name"] = tool->name();
    reject(sink, request, e.code(), e.what(), details);
    return;
  }
  if (plan.automatic) {
    log::get("core")->debug(
        "model tool={} model={} reason=\"{}\"", tool->name(), plan.model, plan.model_reason);
  }

  auto call = std::make_shared<Call>();
  call->key = key;
  call->request_id = request.request_id;
  call->session_id = request.session_id;
  call->tool_name = std::string(tool->name());
  call->model = plan.model;
  call->provider = plan.provider;
  call->arguments = std::make_shared<const nlohmann::json>(std::move(request.arguments));
  call->fingerprint = fingerprint;
  call->store_key = result_store_key(request);
  call->sinks.emplace_back(sink);
  auto ticket = inflight_.insert(key, call);
  if (!ticket && attach_existing(request, key, fingerprint, sink)) {
    return; // another connection of this session started the same id meanwhile
  }
  if (!ticket) {
    reject(sink,
           request,
           Errc::duplicate,
           "request_id " + request.request_id + " is already running",
           {{"request_id", request.request_id}});
    return;
  }
  call->ticket = std::move(ticket);
  if (!request.owner.empty()) {
    owned_.put(call_key(request.owner, request.request_id), request.session_id);
  }
  call->progress(kAcceptedNote);

  const bool reusable = tool->reusable() && plan.conversation_id.empty() &&
                        config_.disable_coalesce_tools.count(tool->name()) == 0;
  std::string shared_key;
  if (reusable) {
    shared_key = share_key(request, *call->arguments, *tool, plan);
    if (auto cached = reuse_.get(shared_key)) {
      ++counters_.cache_hits;
      call->ack(config_.call_timeout);
      complete(*call, own_thread(*cached));
      return;
    }
  }

  // Everything is set before the execution is published in shared_: from then
  // on other callers may join it under its own mutex.
  auto execution = std::make_shared<Execution>();
  execution->tool = tool;
  execution->plan = std::move(plan);
  execution->arguments = call->arguments;
  execution->session_id = request.session_id;
  execution->acquire_deadline = Clock::now() + config_.acquire_timeout;
  execution->callers.push_back(call);
  call->run_in(execution);
  {
    const std::lock_guard lock(mutex_);
    if (reusable) {
      if (const auto it = shared_.find(shared_key); it != shared_.end()) {
        Execution& leader = *it->second;
        const std::lock_guard exec_lock(leader.mutex);
        if (!leader.closed) {
          call->run_in(it->second);
          leader.callers.push_back(call);
          ++counters_.coalesced;
          if (leader.admitted) {
            call->ack(config_.call_timeout);
          }
          return;
        }
      }
      execution->key = shared_key;
      shared_[shared_key] = execution;
    }
    live_.insert(execution);
  }
  // Another daemon (or this one before a restart) may have answered it.
  if (!call->store_key.empty()) {
    if (shared_capacity_ != nullptr) {
      // Read in the round trip that takes the global lease (start()).
      execution->lookup = std::make_shared<StoreLookup>();
      execution->lookup_call = call;
    } else {
      execution->lookup = look_up_result(call, execution);
    }
  }
  start(execution);
}

void
Engine::replay_if_stored(const std::shared_ptr<Call>& call,
                         const std::weak_ptr<Execution>& execution,
                         const std::optional<std::string>& text)
{
  std::optional<ToolResult> stored;
  try {
    if (text) {
      stored = parse_stored_result(*text, call->fingerprint);
    }
  } catch (const std::exception& e) {
    // Unreadable: the call runs as if nothing were stored.
    log::get("core")->warn(
        "stored result unreadable request_id={} error=\"{}\"", call->request_id, e.what());
  }
  if (!stored) {
    return;
  }
  complete(*call, std::move(*stored), true);
  // When nobody else waits for this run, it stops before its tool runs. It
  // is closed in the step that confirms its callers are the ones found
  // finished, so an identical call sent meanwhile starts a run of its own
  // instead of joining one being stopped (and getting CANCELLED).
  const auto run = execution.lock();
  if (!run) {
    return;
  }
  for (;;) {
    const auto callers = run->snapshot();
    for (const auto& other : callers) {
      const std::lock_guard lock(other->mutex);
      if (!other->finished) {
        return;
      }
    }
    const std::lock_guard lock(run->mutex);
    if (run->callers == callers) {
      run->closed = true;
      break;
    }
    // Someone joined or left since the snapshot: look again.
  }
  run->stop.request_stop();
}

std::shared_ptr<Engine::StoreLookup>
Engine::look_up_result(const std::shared_ptr<Call>& call,
                       const std::shared_ptr<Execution>& execution)
{
  auto lookup = std::make_shared<StoreLookup>();
  {
    const std::lock_guard lock(mutex_);
    if (config_.max_queued > 0 && lookups_running_ >= config_.max_queued) {
      // The store is that far behind: this call runs without asking it (at
      // worst it runs again instead of being replayed) rather than queue a
      // lookup without bound, as a flood of calls refused for capacity did.
      log::get("core")->debug("result lookup skipped request_id={}: {} lookups waiting",
                              printable(call->request_id, 64),
                              lookups_running_);
      return nullptr;
    }
    ++lookups_running_;
  }
  const auto done = [this, lookup] {
    lookup->answer();
    const std::lock_guard lock(mutex_);
    --lookups_running_;
    drained_.notify_all();
  };
  const bool posted = lookups_.post([this, call, weak = std::weak_ptr(execution), done] {
    // Answered however this job ends: the run waits for the answer.
    const ScopeExit answered(done);
    replay_if_stored(call, weak, get_or_nothing(*shared_store_, call->store_key));
  });
  if (!posted) {
    done(); // shutting down: nothing to look up
  }
  return lookup;
}

std::string
Engine::result_store_key(const CallRequest& request) const
{
  std::string key;
  if (shared_store_ == nullptr) {
    return key;
  }
  key.append(config_.redis_prefix).append("result:");
  // Daemons with different tokens never see each other's results.
  key.append(std::to_string(std::hash<std::string>{}(config_.token))).append(":");
  key.append(request.owner.empty() ? request.session_id : request.owner);
  key.append(":").append(request.request_id);
  return key;
}

bool
Engine::attach_existing(const CallRequest& request,
                        const std::string& key,
                        std::uint64_t fingerprint,
                        const std::shared_ptr<CallSink>& sink)
{
  // A stored result is replayed only for the same call: a client that reuses
  // an id for a different call (e.g. per-connection counters) runs it afresh.
  const auto replay = [&] {
    auto stored = results_.get(key);
    if (!stored || stored->fingerprint != fingerprint) {
      return false;
    }
    ++counters_.replayed; // counted before the client can see it
    sink->on_result(request.request_id, *stored->result);
    return true;
  };
  if (replay()) {
    return true;
  }
  auto running = inflight_.find(key);
  if (!running && !request.owner.empty()) {
    // Another session of the same token may own this request id.
    if (const auto session = owned_.get(call_key(request.owner, request.request_id));
        session && *session != request.session_id) {
      const std::string owned_key = call_key(*session, request.request_id);
      if (auto stored = results_.get(owned_key); stored && stored->fingerprint == fingerprint) {
        ++counters_.replayed;
        sink->on_result(request.request_id, *stored->result);
        return true;
      }
      running = inflight_.find(owned_key);
      if (running && running->fingerprint != fingerprint) {
        running.reset(); // a different call: this session runs its own
      }
    }
  }
  if (!running) {
    return false;
  }
  if (running->fingerprint != fingerprint) {
    reject(sink,
           request,
           Errc::duplicate,
           "request_id " + request.request_id + " is already in use by a different call",
           {{"request_id", request.request_id}});
    return true;
  }
  if (running->add_sink(sink, "duplicate request; still processing")) {
    return true;
  }
  // It finished between the two look-ups: replay it if it was stored.
  return replay();
}

void
Engine::start(const std::shared_ptr<Execution>& execution)
{
  std::optional<Scope> full;
  {
    const std::lock_guard lock(mutex_);
    full = take_place(config_, queued_by_session_, queued_, execution->session_id);
  }
  if (full) {
    // Refused at once: a burst in one session must not queue without bound.
    ToolFailure failure =
        capacity_failure(CapacityRejection{*full, "", AcquireStatus::timed_out}, *execution);
    failure.message = queue_full_message(config_, *full, "calls", "capacity");
    failure.details["queue_full"] = true;
    finish(execution, failure);
    retire(execution);
    return;
  }
  // Shared capacity costs a store round trip: made on an idle call thread,
  // which then runs the call itself, there is no hop to the capacity worker
  // and back. A busy daemon queues as usual, holding no thread while it waits.
  if (capacity_.shared() && !t_call_thread && pool_.post_if_idle([this, execution] {
        const CallThread mark;
        acquire(execution);
      })) {
    return;
  }
  acquire(execution);
}

void
Engine::acquire(const std::shared_ptr<Execution>& execution)
{
  const auto notice = [this, weak = std::weak_ptr(execution)](Scope scope,
                                                              const std::string& provider) {
    if (auto exec = weak.lock()) {
      const std::string note = "waiting for " + std::string(scope_name(scope)) + " capacity" +
                               (provider.empty() ? "" : " (" + provider + ")");
      for (const auto& call : exec->snapshot()) {
        call->progress(note);
      }
      const std::lock_guard lock(exec->mutex);
      exec->waiting_for =
          std::string(scope_name(scope)) + (provider.empty() ? "" : " (" + provider + ")");
      start_heartbeat(exec);
    }
  };
  {
    const std::lock_guard lock(execution->mutex);
    execution->starting = true;
  }
  CapacityController::Request request{
      CallScopes{execution->session_id, execution->plan.conversation_id, execution->plan.provider},
      execution->acquire_deadline,
      execution->stop.get_token(),
      notice};
  CapacityController::Lookup lookup;
  if (const auto call = execution->lookup_call.lock();
      call && execution->lookup && !execution->lookup->done()) {
    lookup.key = call->store_key;
    lookup.on_answer = [this, answered = execution->lookup, call, weak = std::weak_ptr(execution)](
                           std::optional<std::string> text) {
      replay_if_stored(call, weak, text);
      answered->answer();
    };
  } else if (shared_capacity_ != nullptr && execution->lookup) {
    // Shared capacity carries the lookup, but the call that asked is gone
    // (cancelled while the run waited for a thread): nothing is looked up,
    // and run() must not wait for an answer nobody will give.
    execution->lookup->answer();
  }
  std::optional<AcquireOutcome> early;
  {
    // Parked leases not asked for (a full session scope) go back at the end
    // of this block, before the call runs.
    const auto ahead =
        t_call_thread ? capacity_.prefetch(request.scopes, lookup) : SharedCapacity::Prefetch();
    capacity_.acquire_async(
        std::move(request),
        [this, execution](AcquireOutcome outcome) {
          {
            const std::lock_guard lock(execution->mutex);
            if (execution->starting) {
              execution->early.emplace(std::move(outcome));
              return; // acquire() continues on its own thread
            }
          }
          admitted(execution, std::move(outcome), false);
        },
        std::move(lookup));
    const std::lock_guard lock(execution->mutex);
    execution->starting = false;
    early.swap(execution->early);
  }
  if (early) {
    admitted(execution, std::move(*early), true);
  }
}

void
Engine::admitted(const std::shared_ptr<Execution>& execution,
                 AcquireOutcome outcome,
                 bool may_run_inline)
{
  {
    const std::lock_guard lock(mutex_);
    leave_place(queued_by_session_, queued_, execution->session_id);
  }
  if (auto* rejection = std::get_if<CapacityRejection>(&outcome)) {
    // An auto call whose provider stayed full until the acquire deadline
    // tries the other provider once, without waiting again.
    if (rejection->scope == Scope::provider && rejection->status == AcquireStatus::timed_out &&
        take_fallback(*execution,
                      rejection->provider + " capacity still full at the acquire deadline")) {
      execution->acquire_deadline = Clock::now();
      start(execution);
      return;
    }
    finish(execution, capacity_failure(*rejection, *execution));
    retire(execution);
    return;
  }
  admitted_calls_.fetch_add(1, std::memory_order_relaxed);
  execution->granted.store(true, std::memory_order_relaxed);
  auto permits = std::make_shared<CallPermits>(std::move(std::get<CallPermits>(outcome)));
  // Tools that call no model are quick: run them on this thread when
  // capacity was free right away, sparing a thread hop and the timers.
  if (may_run_inline && execution->plan.provider.empty() && execution->lookup == nullptr) {
    run(execution, std::move(*permits), begin(execution, true));
    return;
  }
  // Acked here, not on the call thread: a call admitted at once is acked on
  // the thread that received it, so the ack leaves with the accepted note in
  // one send instead of waking the connection again.
  const auto deadline = begin(execution, false);
  if (may_run_inline && t_call_thread) {
    t_call_thread = false; // what the tool does is not part of this acquisition
    run(execution, std::move(*permits), deadline); // already on a call thread
    return;
  }
  // On an event loop (a call that found capacity free, or one admitted as
  // another ended there), a model call needs no call thread.
  if (execution->lookup == nullptr && measured_chat_->starts_here() &&
      run_on_loop(execution, *permits, deadline)) {
    return;
  }
  if (!pool_.post([this, execution, permits, deadline] {
        run(execution, std::move(*permits), deadline);
      })) {
    permits->reset();
    finish(
        execution,
        ToolFailure{Errc::shutting_down, "the daemon is shutting down", nlohmann::json::object()});
    retire(execution);
  }
}

void
Engine::start_heartbeat(const std::shared_ptr<Execution>& execution)
{
  if (execution->heartbeat || execution->closed) {
    return;
  }
  execution->heartbeat =
      scheduler_.every(config_.progress_interval, [weak = std::weak_ptr(execution)] {
        if (auto exec = weak.lock()) {
          for (const auto& call : exec->snapshot()) {
            call->progress({});
          }
        }
      });
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
  if (rejection.status == AcquireStatus::refused) {
    details["reason"] = "shared_store_unreachable";
    log::get("core")->warn("capacity refused scope={} provider={} session={} reason=redis_down",
                           scope,
                           rejection.provider,
                           short_id(execution.session_id));
    return ToolFailure{Errc::over_capacity,
                       "no " + scope +
                           " capacity: the shared store (Redis) is unreachable and "
                           "EXAI_REDIS_FAILURE=refuse",
                       details};
  }
  log::get("core")->warn("capacity exhausted scope={} provider={} session={}",
                         scope,
                         rejection.provider,
                         short_id(execution.session_id));
  return ToolFailure{Errc::over_capacity,
                     "no " + scope + " capacity within " +
                         std::to_string(config_.acquire_timeout.count()) + " ms",
                     details};
}

Engine::Clock::time_point
Engine::begin(const std::shared_ptr<Execution>& execution, bool inline_run)
{
  const auto deadline = Clock::now() + config_.call_timeout;
  std::vector<std::shared_ptr<Call>> admitted_callers;
  {
    const std::lock_guard lock(execution->mutex);
    execution->admitted = true;
    admitted_callers = execution->callers; // later joiners see `admitted` and ack themselves
    // An inline run returns before any timer could fire; its deadline still
    // reaches the tool through the context.
    if (!inline_run) {
      start_heartbeat(execution);
      execution->deadline = scheduler_.at(deadline, [this, weak = std::weak_ptr(execution)] {
        if (auto exec = weak.lock()) {
          expire(exec);
        }
      });
    }
  }
  for (const auto& call : admitted_callers) {
    call->ack(config_.call_timeout);
  }
  return deadline;
}

namespace {

// A tool's run as the engine sees it: what `body` returns, or the failure
// its exception means.
template <typename Body>
ToolResult
guarded_tool_run(const Tool& tool, Body&& body)
{
  try {
    return body();
  } catch (const Error& e) {
    return ToolFailure{e.code(), e.what(), e.details()};
  } catch (const std::exception& e) {
    log::get("core")->error("tool crashed tool={} error=\"{}\"", tool.name(), e.what());
    return ToolFailure{Errc::internal_error, "internal error in tool", nlohmann::json::object()};
  }
}

} // namespace

ToolContext
Engine::context_for(Execution& execution, CallPermits& permits, Clock::time_point deadline)
{
  Execution* const exec = &execution;
  CallPermits* const held = &permits;
  return ToolContext{
      *execution.arguments,
      execution.plan,
      execution.stop.get_token(),
      deadline,
      *measured_chat_,
      providers_,
      conversations_,
      [this] { return status_json(); },
      [weak = execution.weak_from_this()](std::string_view note) {
        if (auto running = weak.lock()) {
          if (note.starts_with(kStreamingNotePrefix)) {
            running->streaming.store(true, std::memory_order_relaxed);
          }
          for (const auto& call : running->snapshot()) {
            call->progress(note);
          }
        }
      },
      config_,
      file_roots_,
      [this, exec, held, deadline](std::string_view reason) {
        if (!take_fallback(*exec, std::string(reason))) {
          return false;
        }
        if (auto refused = capacity_.switch_provider(
                *held, exec->plan.provider, deadline, exec->stop.get_token())) {
          log::get("core")->warn("fallback refused: no {} capacity in time", exec->plan.provider);
          return false;
        }
        return true;
      },
      [this, exec](const std::string& provider, Clock::time_point until) {
        return capacity_.extra_provider_permit(provider, until, exec->stop.get_token());
      },
      http_,
      daemon_view_.get()};
}

void
Engine::run(const std::shared_ptr<Execution>& execution,
            CallPermits permits,
            Clock::time_point deadline)
{
  if (execution->lookup != nullptr) {
    execution->lookup->wait(); // a stored result, if there is one, went out instead
  }
  ToolResult result = guarded_tool_run(*execution->tool, [&]() -> ToolResult {
    if (execution->stop.stop_requested()) {
      throw Error(Errc::cancelled, "stopped before the tool ran");
    }
    ToolContext context = context_for(*execution, permits, deadline);
    return execution->tool->run(context);
  });
  conclude(execution, permits, std::move(result));
}

void
Engine::conclude(const std::shared_ptr<Execution>& execution,
                 CallPermits& permits,
                 ToolResult result)
{
  // Capacity goes back before anyone hears of the result, so a client that
  // sends its next call at once finds it free.
  permits.reset();
  if (execution->stop.stop_requested()) {
    const Errc reason = execution->stop_reason.load();
    if (auto* failure = std::get_if<ToolFailure>(&result);
        failure != nullptr && failure->code == Errc::cancelled) {
      failure->code = reason;
    }
  }
  finish(execution, std::move(result));
  retire(execution);
}

// A call whose model request runs on an event loop's transfer loop: it owns
// what the blocking run() keeps on its stack — the permits, the tool's
// context and step — until the call concludes.
struct Engine::LoopRun {
  std::shared_ptr<Execution> execution;
  CallPermits permits;
  std::optional<ToolContext> context; // refers to *execution and permits
  std::unique_ptr<ModelStep> step;
};

bool
Engine::run_on_loop(const std::shared_ptr<Execution>& execution,
                    CallPermits& permits,
                    Clock::time_point deadline)
{
  auto run = std::make_shared<LoopRun>();
  run->execution = execution;
  run->permits = std::move(permits);
  run->context.emplace(context_for(*execution, run->permits, deadline));
  const Tool& tool = *execution->tool;
  std::optional<ChatRequest> request;
  ToolResult early = guarded_tool_run(tool, [&]() -> ToolResult {
    if (execution->stop.stop_requested()) {
      throw Error(Errc::cancelled, "stopped before the tool ran");
    }
    run->step = tool.model_step(*run->context);
    if (run->step) {
      request = run->step->build(execution->plan, run->step->info);
    }
    return ToolSuccess{};
  });
  if (!request) {
    if (!run->step && std::holds_alternative<ToolSuccess>(early)) {
      permits = std::move(run->permits); // this call needs a call thread
      return false;
    }
    // Concluded on a call thread: this may be a capacity release admitting
    // the call, and its release would admit the next one here, and so on
    // down the stack for every queued call that fails as early.
    conclude_on_call_thread(
        run, [early] { return early; }, early);
    return true;
  }
  loop_calls_.fetch_add(1, std::memory_order_relaxed);
  if (run->context->progress && !request->on_partial) {
    request->on_partial = PartialProgress(run->context->progress, request->model);
  }
  const bool started = measured_chat_->start(
      execution->plan.provider,
      std::move(*request),
      execution->stop.get_token(),
      [this, run](ChatOutcome outcome) { model_answered(run, std::move(outcome)); });
  if (!started) {
    conclude_on_call_thread(run, [run] { return run_model_step(*run->context, *run->step); });
  }
  return true;
}

void
Engine::model_answered(const std::shared_ptr<LoopRun>& run, ChatOutcome outcome)
{
  if (!model_call_settled(*run->context, outcome)) {
    // A web-search round or a fallback follows: blocking work, for a call thread.
    conclude_on_call_thread(run, [run, first = std::move(outcome)]() mutable {
      const ChatOutcome last =
          call_model_after(*run->context, run->step->build, run->step->info, std::move(first));
      return run->step->finish(*run->context, last, run->step->info);
    });
    return;
  }
  ToolResult result = guarded_tool_run(*run->execution->tool, [&] {
    return run->step->finish(*run->context, outcome, run->step->info);
  });
  conclude(run->execution, run->permits, std::move(result));
}

void
Engine::conclude_on_call_thread(const std::shared_ptr<LoopRun>& run,
                                std::function<ToolResult()> work,
                                ToolResult refused)
{
  if (!pool_.post([this, run, work = std::move(work)] {
        ToolResult result = guarded_tool_run(*run->execution->tool, work);
        conclude(run->execution, run->permits, std::move(result));
      })) {
    conclude(run->execution, run->permits, std::move(refused));
  }
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
Engine::finish(const std::shared_ptr<Execution>& execution, ToolResult result)
{
  auto shared = std::make_shared<const ToolResult>(std::move(result));
  if (!execution->key.empty() && std::holds_alternative<ToolSuccess>(*shared)) {
    reuse_.put(execution->key, shared);
  }
  bool first = true;
  for (const auto& call : detach(*execution)) {
    complete(*call, first ? shared : own_thread(shared));
    first = false;
  }
}

bool
Engine::take_fallback(Execution& execution, const std::string& reason)
{
  CallPlan& plan = execution.plan;
  if (!plan.automatic || !plan.fallback || !plan.fallback_from.empty()) {
    return false;
  }
  plan.fallback_from = plan.model;
  plan.fallback_reason = reason;
  plan.provider = plan.fallback->provider;
  plan.model = plan.fallback->model;
  plan.fallback.reset();
  log::get("core")->info(
      "fallback from={} to={} reason=\"{}\"", plan.fallback_from, plan.model, reason);
  return true;
}

std::shared_ptr<const ToolResult>
Engine::own_thread(std::shared_ptr<const ToolResult> result)
{
  const auto* success = std::get_if<ToolSuccess>(result.get());
  if (success == nullptr || success->outputs.empty() ||
      success->outputs.front().find("\"continuation_id\"") == std::string::npos) {
    return result;
  }
  nlohmann::json envelope = nlohmann::json::parse(success->outputs.front(), nullptr, false);
  if (envelope.is_discarded() || !envelope.contains("continuation_offer") ||
      !envelope["continuation_offer"].is_object()) {
    return result;
  }
  auto& offer = envelope["continuation_offer"];
  const auto forked = conversations_.fork(offer.value("continuation_id", ""));
  if (!forked) {
    return result;
  }
  offer["continuation_id"] = *forked;
  ToolSuccess copy = *success;
  copy.outputs.front() = envelope.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return std::make_shared<const ToolResult>(std::move(copy));
}

void
Engine::expire(const std::shared_ptr<Execution>& execution)
{
  execution->stop_reason = Errc::timeout;
  execution->stop.request_stop();
  const ToolFailure timeout{Errc::timeout,
                            "call exceeded its " + std::to_string(seconds(config_.call_timeout)) +
                                " s deadline",
                            {{"timeout", seconds(config_.call_timeout)},
                             {"timeout_seconds", seconds(config_.call_timeout)}}};
  for (const auto& call : detach(*execution)) {
    complete(*call, timeout);
  }
}

void
Engine::retire(const std::shared_ptr<Execution>& execution)
{
  // Notified under the lock: once shutdown() sees no live execution the
  // engine may be destroyed, and nothing here may touch it after that.
  const std::lock_guard lock(mutex_);
  live_.erase(execution);
  drained_.notify_all();
}

void
Engine::complete(Call& call, ToolResult result, bool replayed)
{
  complete(call, std::make_shared<const ToolResult>(std::move(result)), replayed);
}

void
Engine::complete(Call& call, std::shared_ptr<const ToolResult> kept, bool replayed)
{
  bool delivered = false;
  bool stored = false;
  const ToolResult& result = *kept;
  const auto took = Clock::now() - call.accepted;
  {
    const std::lock_guard lock(call.mutex);
    if (call.finished) {
      return; // another path already produced this call's one result
    }
    // Stored before `finished` is set, so a resubmitted request_id always
    // finds either the running call or its stored result.
    if (replayable(result)) {
      stored = results_.put(call.key, StoredResult{call.fingerprint, kept});
    }
    if (toolcall_log_ && !replayed) {
      // Queued before the client hears the result, so the log's order is the
      // order clients saw; the log's own thread formats and writes it.
      toolcall_log_->record(
          ToolCallRecord{std::chrono::system_clock::now(),
                         call.session_id,
                         call.request_id,
                         call.tool_name,
                         call.model,
                         call.provider,
                         std::chrono::duration_cast<std::chrono::milliseconds>(took),
                         call.arguments,
                         kept});
    }
    call.finished = true;
    if (replayed) {
      ++counters_.replayed;
    } else {
      count(result);
    }
    // The id is free before anyone hears the result, so a client may reuse
    // it at once.
    if (call.ticket) {
      call.ticket->reset();
    }
    for (const auto& weak : call.sinks) {
      if (auto sink = weak.lock()) {
        delivered = sink->on_result(call.request_id, result) || delivered;
      }
    }
  }
  if (!replayed) { // a replay is already stored and was no run of the tool
    call_latency_.observe(std::chrono::duration<double>(took).count());
    if (stored && !call.store_key.empty()) {
      std::string text = stored_result_text(call.fingerprint, *kept);
      if (shared_capacity_ != nullptr) {
        // With the releaser's next batch: off this thread, no round trip of its own.
        shared_capacity_->write_behind({call.store_key, std::move(text), config_.result_ttl});
      } else {
        shared_store_->put(call.store_key, text, config_.result_ttl);
      }
    }
  }
  if (stored && !delivered) {
    note_undelivered(call.session_id, call.request_id);
  }
}

void
Engine::note_undelivered(const std::string& session_id, const std::string& request_id)
{
  const std::lock_guard lock(mutex_); // makes the read-modify-write atomic
  auto pending = undelivered_.get(session_id).value_or(std::vector<std::string>{});
  pending.push_back(request_id);
  undelivered_.put(session_id, std::move(pending));
}

void
Engine::undelivered(const std::string& session_id, const std::vector<std::string>& request_ids)
{
  for (const auto& request_id : request_ids) {
    if (results_.get(call_key(session_id, request_id))) {
      note_undelivered(session_id, request_id);
    }
  }
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
  auto call = inflight_.find(call_key(session_id, request_id));
  if (!call) {
    return false;
  }
  auto execution = call->running_in();
  if (!execution) {
    // Cancelled before its run was set up; complete() answers once, so a run
    // that starts anyway sends nothing more.
    complete(*call,
             ToolFailure{Errc::cancelled, "cancelled by the client", nlohmann::json::object()});
    return true;
  }
  bool last = false;
  {
    const std::lock_guard lock(execution->mutex);
    auto& callers = execution->callers;
    std::erase(callers, call);
    last = callers.empty();
    // Closed in the same step that found it empty: an identical call sent
    // while this one's answer goes out starts a run of its own instead of
    // joining the one being stopped (and never hearing back).
    execution->closed = execution->closed || last;
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
      (void)call->add_sink(sink, "resumed; still running");
    }
  }
  std::optional<std::vector<std::string>> pending;
  {
    const std::lock_guard lock(mutex_);
    pending = undelivered_.get(session_id);
    undelivered_.erase(session_id);
  }
  if (!pending) {
    return;
  }
  std::vector<std::string> again;
  for (const auto& request_id : *pending) {
    if (auto stored = results_.get(call_key(session_id, request_id))) {
      if (!sink->on_result(request_id, *stored->result)) {
        again.push_back(request_id);
      }
    }
  }
  undelivered(session_id, again);
}

void
Engine::shutdown(std::chrono::milliseconds grace)
{
  accepting_ = false;
  std::unique_lock lock(mutex_);
  const auto drained = [this] { return live_.empty() && lookups_running_ == 0; };
  drained_.wait_for(lock, grace, drained);
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
  // Stopped tools return promptly and waiting acquisitions end at once (their
  // stop was requested); each releases its capacity on the way out. A
  // submission still reading the shared store refuses itself (accepting_).
  drained_.wait(lock, drained);
}

EngineStats
Engine::stats() const
{
  EngineStats s;
  s.capacity = capacity_.snapshot();
  s.inflight_calls = inflight_.size();
  s.cached_results = results_.size();
  s.cached_result_bytes = results_.bytes();
  s.reuse_bytes = reuse_.bytes();
  s.conversations = conversations_.size();
  s.conversation_bytes = conversations_.bytes();
  s.result_budget = config_.result_max_bytes;
  s.reuse_budget = config_.reuse_max_bytes;
  s.conversation_budget = config_.conversation_max_bytes;
  s.call_threads = pool_.threads();
  s.loop_calls = loop_calls_.load(std::memory_order_relaxed);
  s.accepting = accepting_;
  s.call_latency = call_latency_.snapshot();
  for (const auto& [id, histogram] : upstream_latency_) {
    s.upstream_latency.emplace(id, histogram->snapshot());
    s.circuits.emplace(id, chat_.circuit_state(id));
    s.pools.emplace(id, chat_.pool_stats(id));
  }
  for (const auto& [id, histogram] : first_token_) {
    s.first_token.emplace(id, histogram->snapshot());
  }
  s.usage = usage_.snapshot();
  s.priced = usage_.priced();
  if (shared_capacity_ != nullptr) {
    s.shared = shared_capacity_->stats();
  }
  s.admitted_calls = admitted_calls_.load();
  if (shared_store_ != nullptr) {
    s.store_round_trips = shared_store_->round_trips();
  }
  const std::lock_guard lock(mutex_);
  s.executions = live_.size();
  s.queued = queued_;
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

std::vector<InflightCallView>
Engine::inflight_calls() const
{
  const auto now = Clock::now();
  std::vector<InflightCallView> out;
  for (const auto& call : inflight_.all()) {
    InflightCallView view;
    view.request_id = call->request_id;
    view.session_id = call->session_id;
    view.tool = call->tool_name;
    view.model = call->model;
    view.provider = call->provider;
    view.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(now - call->accepted);
    view.arguments = call->arguments;
    view.state = "accepted";
    if (const auto execution = call->running_in()) {
      const std::lock_guard lock(execution->mutex);
      if (!execution->admitted && !execution->granted.load(std::memory_order_relaxed)) {
        view.state = "waiting";
        view.waiting_for = execution->waiting_for;
      } else {
        view.state = execution->streaming.load(std::memory_order_relaxed) ? "streaming" : "running";
      }
    }
    out.push_back(std::move(view));
  }
  return out;
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
