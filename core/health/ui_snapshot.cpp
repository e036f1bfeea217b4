#include "core/health/ui_snapshot.hpp"

#include "core/util/text.hpp"

#include <algorithm>
#include <cmath>
#include <tuple>

namespace exai::core {

namespace {

using nlohmann::json;

constexpr std::size_t kPromptExcerptChars = 400;

json
scope_entry(std::string name, const json& scope)
{
  return {{"name", std::move(name)},
          {"capacity", scope.value("capacity", 0)},
          {"in_use", scope.value("in_use", 0)},
          {"waiting", scope.value("waiting", 0)}};
}

json
latency_json(const HistogramSnapshot& h)
{
  const double mean_ms =
      h.count == 0 ? 0.0 : std::round(h.sum * 1000.0 / static_cast<double>(h.count));
  return {{"count", h.count},
          {"mean_ms", mean_ms},
          {"p50_ms", histogram_quantile_ms(h, 0.5)},
          {"p95_ms", histogram_quantile_ms(h, 0.95)}};
}

std::string
prompt_excerpt(const json& arguments)
{
  if (arguments.is_object()) {
    for (const char* key : {"prompt", "step", "question"}) {
      const auto it = arguments.find(key);
      if (it != arguments.end() && it->is_string()) {
        return printable(it->get<std::string>(), kPromptExcerptChars);
      }
    }
  }
  return {};
}

} // namespace

double
histogram_quantile_ms(const HistogramSnapshot& histogram, double q)
{
  if (histogram.count == 0 || histogram.bounds.empty()) {
    return 0;
  }
  const auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(histogram.count)));
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < histogram.counts.size(); ++i) {
    seen += histogram.counts[i];
    if (seen >= std::max<std::uint64_t>(rank, 1)) {
      return histogram.bounds[std::min(i, histogram.bounds.size() - 1)] * 1000.0;
    }
  }
  return histogram.bounds.back() * 1000.0;
}

json
ui_snapshot_json(const UiInputs& in)
{
  json health = health_json(in.health);
  const json& capacity = health["capacity"];

  json scopes = json::array();
  scopes.push_back(scope_entry("global", capacity["global"]));
  for (const auto& [id, scope] : capacity["providers"].items()) {
    scopes.push_back(scope_entry("provider " + id, scope));
  }
  scopes.push_back(scope_entry("sessions", capacity["sessions"]));
  scopes.push_back(scope_entry("conversations", capacity["conversations"]));

  std::vector<const InflightCallView*> calls;
  calls.reserve(in.inflight.size());
  for (const auto& call : in.inflight) {
    calls.push_back(&call);
  }
  // Longest first; ties (same millisecond) in a fixed order, so rows do not
  // swap places between refreshes.
  std::sort(calls.begin(), calls.end(), [](const auto* a, const auto* b) {
    return a->elapsed != b->elapsed
               ? a->elapsed > b->elapsed
               : std::tie(a->session_id, a->request_id) < std::tie(b->session_id, b->request_id);
  });
  json inflight = json::array();
  for (const auto* call : calls) {
    json entry = {{"request_id", printable(call->request_id, 128)},
                  {"session", short_id(call->session_id)},
                  {"tool", call->tool},
                  {"model", call->model},
                  {"provider", call->provider},
                  {"state", call->state},
                  {"waiting_for", call->waiting_for},
                  {"elapsed_ms", call->elapsed.count()}};
    if (in.show_content && call->arguments) {
      entry["prompt"] = prompt_excerpt(*call->arguments);
    }
    inflight.push_back(std::move(entry));
  }

  json recent = json::array();
  for (const auto& entry : in.recent) {
    recent.push_back(entry);
    if (!in.show_content) {
      // Summaries carry excerpts only when the log was asked to; belt and braces.
      recent.back().erase("prompt");
      recent.back().erase("output");
    }
  }

  const EngineStats& e = in.health.engine;
  json providers = json::array();
  for (const auto& [id, circuit] : e.circuits) {
    json entry = {{"id", id}, {"circuit", circuit}};
    if (const auto it = e.upstream_latency.find(id); it != e.upstream_latency.end()) {
      entry["upstream"] = latency_json(it->second);
    }
    if (const auto it = e.first_token.find(id); it != e.first_token.end()) {
      entry["first_token"] = latency_json(it->second);
    }
    if (const auto it = capacity["providers"].find(id); it != capacity["providers"].end()) {
      entry["in_use"] = it->value("in_use", 0);
      entry["capacity"] = it->value("capacity", 0);
    }
    providers.push_back(std::move(entry));
  }

  json per_minute = json::array();
  for (const auto& minute : in.per_minute) {
    per_minute.push_back(
        {{"minute", minute.minute}, {"calls", minute.calls}, {"errors", minute.errors}});
  }

  return {
      {"version", kUiSnapshotVersion},
      {"t", health["t"]},
      {"daemon",
       {{"state", health["state"]},
        {"healthy", health["healthy"]},
        {"degraded_reasons", health["degraded_reasons"]},
        {"pid", health["pid"]},
        {"host", health["host"]},
        {"port", health["port"]},
        {"uptime_human", health["uptime_human"]},
        {"connections", health["connections"]},
        {"sessions", health["sessions"]},
        {"mcp_sessions", health["mcp_sessions"]},
        {"queued", health["queued"]},
        {"executions", health["executions"]}}},
      {"scopes", std::move(scopes)},
      {"inflight", std::move(inflight)},
      {"recent", std::move(recent)},
      {"providers", std::move(providers)},
      {"per_minute", std::move(per_minute)},
      {"call_latency", latency_json(e.call_latency)},
      {"usage", health["usage"]},
      {"counters", health["counters"]},
      {"show_content", in.show_content},
  };
}

} // namespace exai::core
