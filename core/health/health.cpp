#include "core/health/health.hpp"

#include "core/util/enum_names.hpp"

#include <unistd.h>

#include <fstream>

namespace exai::core {

namespace {

nlohmann::json
scope_json(const LimiterStats& stats)
{
  return {{"capacity", stats.capacity}, {"in_use", stats.in_use}, {"waiting", stats.waiting}};
}

double
epoch(std::chrono::system_clock::time_point t)
{
  return static_cast<double>(
             std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count()) /
         1000.0;
}

} // namespace

std::string_view
state_name(DaemonState state) noexcept
{
  static constexpr EnumNames<DaemonState, 3> kNames{{"starting", "serving", "stopping"},
                                                    "starting"};
  return kNames(state);
}

std::string
uptime_human(std::chrono::seconds uptime)
{
  auto left = uptime.count() < 0 ? 0 : uptime.count();
  const std::int64_t days = left / 86400;
  left %= 86400;
  const std::int64_t hours = left / 3600;
  left %= 3600;
  const std::int64_t minutes = left / 60;
  const std::int64_t secs = left % 60;
  std::string text;
  const auto part = [&text](std::int64_t n, const char* unit) {
    if (n > 0 || !text.empty()) {
      text += (text.empty() ? "" : " ") + std::to_string(n) + unit;
    }
  };
  part(days, "d");
  part(hours, "h");
  part(minutes, "m");
  text += (text.empty() ? "" : " ") + std::to_string(secs) + "s";
  return text;
}

std::int64_t
process_rss_bytes()
{
  std::ifstream statm("/proc/self/statm");
  std::int64_t pages = 0;
  std::int64_t resident = 0;
  if (!(statm >> pages >> resident)) {
    return 0;
  }
  return resident * static_cast<std::int64_t>(::sysconf(_SC_PAGESIZE));
}

namespace {

// Token (and cost) totals, overall and per provider and model.
nlohmann::json
usage_json(const EngineStats& e)
{
  TokenUsage total;
  std::uint64_t calls = 0;
  double cost = 0;
  nlohmann::json by_model = nlohmann::json::array();
  for (const auto& [key, totals] : e.usage) {
    total.prompt += totals.tokens.prompt;
    total.completion += totals.tokens.completion;
    total.cached += totals.tokens.cached;
    calls += totals.calls;
    nlohmann::json entry = {{"provider", key.first},
                            {"model", key.second},
                            {"calls", totals.calls},
                            {"tokens", to_json(totals.tokens)}};
    if (totals.cost) {
      cost += *totals.cost;
      entry["cost"] = *totals.cost;
    }
    by_model.push_back(std::move(entry));
  }
  nlohmann::json out = {{"calls", calls}, {"tokens", to_json(total)}, {"by_model", by_model}};
  if (e.priced) {
    out["cost"] = cost;
  }
  return out;
}

} // namespace

nlohmann::json
health_json(const HealthInputs& in)
{
  const EngineStats& e = in.engine;
  const CapacitySnapshot& cap = e.capacity;
  nlohmann::json reasons = nlohmann::json::array();
  if (in.state != DaemonState::serving) {
    reasons.push_back("state is " + std::string(state_name(in.state)));
  }
  if (cap.global.in_use >= cap.global.capacity) {
    reasons.push_back("global capacity exhausted");
  }
  nlohmann::json providers = nlohmann::json::object();
  for (const auto& [id, stats] : cap.providers) {
    providers[id] = scope_json(stats);
    if (stats.in_use >= stats.capacity) {
      reasons.push_back("provider " + id + " capacity exhausted");
    }
  }
  std::string capacity_mode = "local";
  nlohmann::json redis = nullptr;
  if (e.shared) {
    const SharedCapacityStats& r = *e.shared;
    capacity_mode = r.shared ? "shared" : "degraded";
    if (!r.shared) {
      reasons.push_back("shared capacity degraded (" + r.reason + "), fallback " +
                        std::string(failure_mode_name(r.failure)));
    }
    const double calls = static_cast<double>(e.admitted_calls);
    redis = {{"mode", capacity_mode},
             {"reason", r.reason},
             {"failure", failure_mode_name(r.failure)},
             {"lease_ttl_ms", r.lease_ttl.count()},
             {"round_trips", r.round_trips},
             {"store_round_trips", e.store_round_trips},
             {"round_trips_per_call",
              calls > 0 ? static_cast<double>(r.round_trips + e.store_round_trips) / calls : 0.0},
             {"leases_acquired", r.leases_acquired},
             {"leases_prefetched", r.leases_prefetched},
             {"leases_held", r.leases_held},
             {"lease_renewals", r.lease_renewals},
             {"fallbacks", r.fallbacks},
             {"fallback_permits", r.fallback_permits},
             {"write_queue_bytes", r.write_queue_bytes},
             {"writes_dropped", r.writes_dropped}};
  }
  nlohmann::json circuits = nlohmann::json::object();
  for (const auto& [id, state] : e.circuits) {
    circuits[id] = state;
    if (state == "open") {
      reasons.push_back("provider " + id + " circuit open");
    }
  }
  nlohmann::json pools = nlohmann::json::object();
  for (const auto& [id, pool] : e.pools) {
    pools[id] = {{"idle", pool.idle},
                 {"leased", pool.leased},
                 {"max_idle", pool.max_idle},
                 {"reused", pool.reused},
                 {"opened", pool.opened},
                 {"stale_retries", pool.stale_retries}};
  }
  nlohmann::json usage = usage_json(e);
  nlohmann::json rejected = {{"global", 0}, {"provider", 0}, {"session", 0}, {"conversation", 0}};
  for (const auto& [scope, n] : e.counters.rejected) {
    rejected[scope] = n;
  }
  auto sessions = scope_json(cap.sessions);
  sessions["limiters"] = cap.session_limiters;
  sessions["capacity_each"] = cap.session_capacity_each;
  auto conversations = scope_json(cap.conversations);
  conversations["limiters"] = cap.conversation_limiters;
  conversations["capacity_each"] = cap.conversation_capacity_each;
  const auto uptime = std::chrono::duration_cast<std::chrono::seconds>(in.now - in.started_at);
  return {
      {"state", state_name(in.state)},
      {"healthy", reasons.empty()},
      {"degraded_reasons", reasons},
      {"pid", in.pid},
      {"host", in.host},
      {"port", in.port},
      {"started_at", epoch(in.started_at)},
      {"t", epoch(in.now)},
      {"uptime_s", uptime.count()},
      {"uptime_human", uptime_human(uptime)},
      {"sessions", in.server.sessions},
      {"sessions_resumable", in.server.sessions_resumable},
      {"mcp_sessions", in.mcp_sessions},
      {"connections", in.server.connections},
      {"pending_connections", in.server.pending},
      {"established_connections", in.server.established},
      {"evicted_connections", in.server.evicted},
      {"refused_connections", in.server.refused},
      {"http_body_bytes", in.server.body_bytes},
      {"http_bodies_refused", in.server.bodies_refused},
      {"tool_count", in.tool_count},
      {"global_capacity", cap.global.capacity},
      {"global_inflight", cap.global.in_use},
      {"capacity_mode", capacity_mode},
      {"redis", std::move(redis)},
      {"capacity",
       {{"global", scope_json(cap.global)},
        {"providers", providers},
        {"sessions", sessions},
        {"conversations", conversations}}},
      {"inflight_calls", e.inflight_calls},
      {"executions", e.executions},
      {"queued", e.queued},
      {"cached_results", e.cached_results},
      {"memory",
       {{"results", {{"bytes", e.cached_result_bytes}, {"budget", e.result_budget}}},
        {"reuse", {{"bytes", e.reuse_bytes}, {"budget", e.reuse_budget}}},
        {"conversations", {{"bytes", e.conversation_bytes}, {"budget", e.conversation_budget}}}}},
      {"call_threads", e.call_threads},
      {"loop_calls", e.loop_calls},
      {"conversation_threads", e.conversations},
      {"circuits", circuits},
      {"upstream_pools", pools},
      {"usage", std::move(usage)},
      {"counters",
       {{"ok", e.counters.ok},
        {"failed", e.counters.failed},
        {"timed_out", e.counters.timed_out},
        {"cancelled", e.counters.cancelled},
        {"shut_down", e.counters.shut_down},
        {"rejected", rejected},
        {"replayed", e.counters.replayed},
        {"coalesced", e.counters.coalesced},
        {"cache_hits", e.counters.cache_hits}}},
      {"rss_bytes", in.rss_bytes},
  };
}

} // namespace exai::core
