#pragma once

// The operator view's snapshot: one JSON document, served at GET /api/top,
// that the page at / and `exai top` both render. Built from what health and
// metrics already gather, the in-flight registry and the tool-call log's
// in-memory summaries, so calls pay nothing for it.

#include "core/calls/engine.hpp"
#include "core/calls/toolcall_log.hpp"
#include "core/health/health.hpp"

#include <nlohmann/json.hpp>

#include <vector>

namespace exai::core {

struct UiInputs {
  HealthInputs health;
  std::vector<InflightCallView> inflight;
  std::vector<nlohmann::json> recent; // ToolCallLog::recent(), newest first
  std::vector<ToolCallLog::MinuteCount> per_minute;
  bool show_content = false; // EXAI_UI_SHOW_CONTENT: prompt excerpts of calls in flight
};

// Version of the snapshot's shape; bumped when a field changes meaning.
inline constexpr int kUiSnapshotVersion = 1;

// {"version", "t", "daemon": {state, healthy, degraded_reasons, pid, host,
// port, uptime_human, connections, sessions, mcp_sessions}, "scopes": [{name,
// capacity, in_use, waiting}], "inflight": [{request_id, session, tool, model,
// provider, state, waiting_for, elapsed_ms[, prompt]}] (longest first),
// "recent": [tool-call log summaries, newest first], "providers": [{id,
// circuit, upstream: {count, mean_ms, p50_ms, p95_ms}, first_token: {…}}],
// "per_minute": [{minute, calls, errors}], "usage": health's "usage",
// "counters": health's "counters", "show_content"}. Session ids are short
// ids; prompt text only with show_content.
nlohmann::json ui_snapshot_json(const UiInputs& inputs);

// The upper bound (in ms) of the bucket holding quantile `q` (0..1) of
// `histogram`, or 0 when it is empty; the largest bound for the overflow.
double histogram_quantile_ms(const HistogramSnapshot& histogram, double q);

} // namespace exai::core
