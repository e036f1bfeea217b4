#include "core/health/metrics.hpp"

#include <fmt/format.h>

#include <array>
#include <tuple>

namespace exai::core {

namespace {

class Writer {
public:
  void family(std::string_view name, std::string_view type, std::string_view help)
  {
    out_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  }
  // `labels` is the inside of {...}, already escaped; empty for none.
  void sample(std::string_view name, const std::string& labels, double value)
  {
    out_ += name;
    if (!labels.empty()) {
      out_ += "{" + labels + "}";
    }
    out_ += fmt::format(" {}\n", value);
  }
  void histogram(std::string_view name, const std::string& labels, const HistogramSnapshot& h)
  {
    const std::string sep = labels.empty() ? "" : labels + ",";
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < h.bounds.size(); ++i) {
      cumulative += h.counts[i];
      sample(std::string(name) + "_bucket",
             sep + fmt::format("le=\"{}\"", h.bounds[i]),
             static_cast<double>(cumulative));
    }
    sample(std::string(name) + "_bucket", sep + "le=\"+Inf\"", static_cast<double>(h.count));
    sample(std::string(name) + "_sum", labels, h.sum);
    sample(std::string(name) + "_count", labels, static_cast<double>(h.count));
  }
  std::string take() { return std::move(out_); }

private:
  std::string out_;
};

std::string
label(std::string_view key, std::string_view value)
{
  return std::string(key) + "=\"" + escape_label_value(value) + "\"";
}

} // namespace

std::string
escape_label_value(std::string_view value)
{
  std::string out;
  out.reserve(value.size());
  for (const char c : value) {
    switch (c) {
    case '\\':
      out += "\\\\";
      break;
    case '"':
      out += "\\\"";
      break;
    case '\n':
      out += "\\n";
      break;
    default:
      out += c;
    }
  }
  return out;
}

std::string
render_prometheus(const HealthInputs& in)
{
  const EngineStats& e = in.engine;
  const CapacitySnapshot& cap = e.capacity;
  Writer w;

  w.family("exai_up", "gauge", "1 while the daemon serves, 0 while starting or stopping.");
  w.sample("exai_up", "", in.state == DaemonState::serving ? 1 : 0);

  if (e.shared) {
    const SharedCapacityStats& r = *e.shared;
    w.family("exai_redis_up", "gauge", "1 while shared capacity uses Redis, 0 while degraded.");
    w.sample("exai_redis_up", "", r.shared ? 1 : 0);
    w.family("exai_redis_round_trips_total",
             "counter",
             "Redis round trips by use (capacity leases, conversations and results).");
    w.sample("exai_redis_round_trips_total",
             label("use", "capacity"),
             static_cast<double>(r.round_trips));
    w.sample("exai_redis_round_trips_total",
             label("use", "store"),
             static_cast<double>(e.store_round_trips));
    w.family("exai_redis_round_trips_per_call",
             "gauge",
             "Redis round trips per admitted call since start-up.");
    w.sample("exai_redis_round_trips_per_call",
             "",
             e.admitted_calls > 0 ? static_cast<double>(r.round_trips + e.store_round_trips) /
                                        static_cast<double>(e.admitted_calls)
                                  : 0.0);
    w.family("exai_redis_leases_acquired_total",
             "counter",
             "Shared capacity leases granted, by the thread that asked (a call's own thread "
             "ahead of its capacity wait, or the capacity worker).");
    w.sample("exai_redis_leases_acquired_total",
             label("by", "call_thread"),
             static_cast<double>(r.leases_prefetched));
    w.sample("exai_redis_leases_acquired_total",
             label("by", "worker"),
             static_cast<double>(r.leases_acquired - r.leases_prefetched));
    w.family("exai_redis_lease_renewals_total", "counter", "Shared capacity leases renewed.");
    w.sample("exai_redis_lease_renewals_total", "", static_cast<double>(r.lease_renewals));
    w.family("exai_redis_leases_held", "gauge", "Shared capacity leases this daemon holds.");
    w.sample("exai_redis_leases_held", "", static_cast<double>(r.leases_held));
    w.family("exai_redis_fallbacks_total",
             "counter",
             "Times Redis became unreachable and local limits took over.");
    w.sample("exai_redis_fallbacks_total", "", static_cast<double>(r.fallbacks));
    w.family("exai_redis_fallback_permits_total",
             "counter",
             "Permits granted from local shares while Redis was unreachable.");
    w.sample("exai_redis_fallback_permits_total", "", static_cast<double>(r.fallback_permits));
    w.family("exai_redis_write_queue_bytes",
             "gauge",
             "Bytes of results and conversation turns waiting to be written to Redis.");
    w.sample("exai_redis_write_queue_bytes", "", static_cast<double>(r.write_queue_bytes));
    w.family("exai_redis_writes_dropped_total",
             "counter",
             "Writes to Redis dropped because EXAI_REDIS_WRITE_QUEUE_MAX_BYTES were waiting.");
    w.sample("exai_redis_writes_dropped_total", "", static_cast<double>(r.writes_dropped));
  }

  w.family("exai_uptime_seconds", "gauge", "Seconds since the daemon started.");
  w.sample(
      "exai_uptime_seconds", "", std::chrono::duration<double>(in.now - in.started_at).count());

  const auto scopes = [&](std::string_view name, std::string_view help, auto field) {
    w.family(name, "gauge", help);
    w.sample(name, label("scope", "global"), static_cast<double>(field(cap.global)));
    for (const auto& [id, stats] : cap.providers) {
      w.sample(name,
               label("scope", "provider") + "," + label("provider", id),
               static_cast<double>(field(stats)));
    }
    w.sample(name, label("scope", "session"), static_cast<double>(field(cap.sessions)));
    w.sample(name, label("scope", "conversation"), static_cast<double>(field(cap.conversations)));
  };
  scopes("exai_capacity",
         "Capacity per scope (session and conversation: summed over live limiters).",
         [](const LimiterStats& s) { return s.capacity; });
  scopes(
      "exai_inflight", "Permits in use per scope.", [](const LimiterStats& s) { return s.in_use; });
  scopes("exai_waiting", "Calls waiting for capacity per scope.", [](const LimiterStats& s) {
    return s.waiting;
  });

  w.family("exai_rejections_total", "counter", "Calls rejected with OVER_CAPACITY, by scope.");
  for (const char* scope : {"global", "provider", "session", "conversation"}) {
    const auto it = e.counters.rejected.find(scope);
    w.sample("exai_rejections_total",
             label("scope", scope),
             static_cast<double>(it == e.counters.rejected.end() ? 0 : it->second));
  }

  w.family("exai_calls_total", "counter", "Finished calls by outcome.");
  const std::pair<const char*, std::uint64_t> outcomes[] = {{"ok", e.counters.ok},
                                                            {"failed", e.counters.failed},
                                                            {"timed_out", e.counters.timed_out},
                                                            {"cancelled", e.counters.cancelled},
                                                            {"shut_down", e.counters.shut_down}};
  for (const auto& [outcome, n] : outcomes) {
    w.sample("exai_calls_total", label("outcome", outcome), static_cast<double>(n));
  }

  w.family("exai_call_duration_seconds", "histogram", "Time from accepting a call to its result.");
  w.histogram("exai_call_duration_seconds", "", e.call_latency);

  w.family("exai_upstream_duration_seconds",
           "histogram",
           "Duration of provider requests, retries included, per provider.");
  for (const auto& [id, h] : e.upstream_latency) {
    w.histogram("exai_upstream_duration_seconds", label("provider", id), h);
  }

  w.family("exai_upstream_first_token_seconds",
           "histogram",
           "Time from sending a streamed provider request to the first piece of its answer.");
  for (const auto& [id, h] : e.first_token) {
    w.histogram("exai_upstream_first_token_seconds", label("provider", id), h);
  }

  w.family("exai_tokens_total",
           "counter",
           "Tokens reported by providers, by provider, model and kind (prompt|completion|cached).");
  for (const auto& [key, totals] : e.usage) {
    const std::string labels = label("provider", key.first) + "," + label("model", key.second);
    const std::array<std::pair<const char*, std::uint64_t>, 3> kinds = {
        {{"prompt", totals.tokens.prompt},
         {"completion", totals.tokens.completion},
         {"cached", totals.tokens.cached}}};
    for (const auto& [kind, n] : kinds) {
      w.sample("exai_tokens_total", labels + "," + label("kind", kind), static_cast<double>(n));
    }
  }
  if (e.priced) {
    w.family(
        "exai_cost_total",
        "counter",
        "Cost of the tokens by provider and model at the EXAI_PRICES table (priced models only).");
    for (const auto& [key, totals] : e.usage) {
      if (totals.cost) {
        w.sample("exai_cost_total",
                 label("provider", key.first) + "," + label("model", key.second),
                 *totals.cost);
      }
    }
  }

  w.family("exai_inflight_calls", "gauge", "Request ids awaiting their result.");
  w.sample("exai_inflight_calls", "", static_cast<double>(e.inflight_calls));
  w.family("exai_cached_results", "gauge", "Results kept for replay.");
  w.sample("exai_cached_results", "", static_cast<double>(e.cached_results));
  w.family("exai_store_bytes", "gauge", "Bytes held by each bounded store.");
  w.family("exai_store_budget_bytes", "gauge", "Byte budget of each bounded store.");
  const std::array<std::tuple<const char*, std::size_t, std::size_t>, 3> stores = {
      std::tuple{"results", e.cached_result_bytes, e.result_budget},
      std::tuple{"reuse", e.reuse_bytes, e.reuse_budget},
      std::tuple{"conversations", e.conversation_bytes, e.conversation_budget}};
  for (const auto& [store, bytes, budget] : stores) {
    w.sample("exai_store_bytes", label("store", store), static_cast<double>(bytes));
    w.sample("exai_store_budget_bytes", label("store", store), static_cast<double>(budget));
  }
  w.family("exai_connections", "gauge", "Open WebSocket connections.");
  w.sample("exai_connections", "", static_cast<double>(in.server.connections));
  w.family("exai_pending_connections",
           "gauge",
           "Connections before hello or before a complete HTTP request.");
  w.sample("exai_pending_connections", "", static_cast<double>(in.server.pending));
  w.family("exai_connections_evicted_total",
           "counter",
           "Pending connections closed to make room (EXAI_WS_MAX_PENDING).");
  w.sample("exai_connections_evicted_total", "", static_cast<double>(in.server.evicted));
  w.family("exai_connections_refused_total",
           "counter",
           "Connections refused by MAX_CONNECTIONS or MAX_CONNECTIONS_PER_IP.");
  w.sample("exai_connections_refused_total", "", static_cast<double>(in.server.refused));
  w.family("exai_http_body_bytes",
           "gauge",
           "Bytes reserved for large HTTP request bodies being received.");
  w.sample("exai_http_body_bytes", "", static_cast<double>(in.server.body_bytes));
  w.family("exai_http_bodies_refused_total",
           "counter",
           "HTTP requests refused because EXAI_HTTP_BODIES_MAX_BYTES were being received.");
  w.sample("exai_http_bodies_refused_total", "", static_cast<double>(in.server.bodies_refused));
  w.family("exai_sessions", "gauge", "Sessions with an open connection.");
  w.sample("exai_sessions", "", static_cast<double>(in.server.sessions));

  w.family("exai_circuit_open", "gauge", "1 when a provider's circuit breaker is open.");
  for (const auto& [id, state] : e.circuits) {
    w.sample("exai_circuit_open", label("provider", id), state == "open" ? 1 : 0);
  }
  w.family("exai_circuit_state", "gauge", "Circuit breaker state per provider (1 = current).");
  for (const auto& [id, state] : e.circuits) {
    for (const char* candidate : {"closed", "open", "half_open"}) {
      w.sample("exai_circuit_state",
               label("provider", id) + "," + label("state", candidate),
               state == candidate ? 1 : 0);
    }
  }

  w.family("exai_upstream_pool_connections",
           "gauge",
           "Kept-alive upstream connections per provider, idle in the pool or leased.");
  for (const auto& [id, pool] : e.pools) {
    w.sample("exai_upstream_pool_connections",
             label("provider", id) + "," + label("state", "idle"),
             static_cast<double>(pool.idle));
    w.sample("exai_upstream_pool_connections",
             label("provider", id) + "," + label("state", "leased"),
             static_cast<double>(pool.leased));
  }
  const std::array<std::tuple<const char*, const char*, std::uint64_t UpstreamPoolStats::*>, 3>
      pool_counters = {
          std::tuple{"exai_upstream_connections_reused_total",
                     "Requests sent on a kept-alive upstream connection.",
                     &UpstreamPoolStats::reused},
          std::tuple{"exai_upstream_connections_opened_total",
                     "Fresh upstream connections (TCP, and TLS for https).",
                     &UpstreamPoolStats::opened},
          std::tuple{"exai_upstream_stale_retries_total",
                     "Requests resent once because a reused connection was closed by the server.",
                     &UpstreamPoolStats::stale_retries}};
  for (const auto& [name, help, field] : pool_counters) {
    w.family(name, "counter", help);
    for (const auto& [id, pool] : e.pools) {
      w.sample(name, label("provider", id), static_cast<double>(pool.*field));
    }
  }

  w.family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
  w.sample("process_resident_memory_bytes", "", static_cast<double>(in.rss_bytes));
  return w.take();
}

} // namespace exai::core
