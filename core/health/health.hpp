#pragma once

#include "core/calls/engine.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace exai::core {

enum class DaemonState { starting, serving, stopping };

// "starting" | "serving" | "stopping".
std::string_view state_name(DaemonState state) noexcept;

// What the network side knows, for health and metrics.
struct ServerStats {
  std::size_t connections = 0;        // WebSocket connections
  std::size_t sessions = 0;           // with at least one open connection
  std::size_t sessions_resumable = 0; // disconnected, kept for resume until SESSION_TIMEOUT_SECS
  std::size_t pending = 0;            // connections before hello / before a complete request
  std::size_t established = 0;        // greeted WebSockets + HTTP requests in progress
  std::uint64_t evicted = 0;          // pending connections closed to make room
  std::uint64_t refused = 0;          // refused by MAX_CONNECTIONS(_PER_IP)
  std::size_t body_bytes = 0;         // large HTTP request bodies being received
  std::uint64_t bodies_refused = 0;   // requests refused by EXAI_HTTP_BODIES_MAX_BYTES
};

// Everything one health report is made of; gathered by `exai serve`.
struct HealthInputs {
  DaemonState state = DaemonState::starting;
  long pid = 0;
  std::string host;
  std::uint16_t port = 0;
  std::chrono::system_clock::time_point started_at;
  std::chrono::system_clock::time_point now;
  std::size_t tool_count = 0; // tools listed (visible)
  EngineStats engine;
  ServerStats server;
  std::size_t mcp_sessions = 0; // /mcp sessions in memory (idle ones re-adopt on use)
  std::int64_t rss_bytes = 0;
};

// The health document (SPEC §5): the Python daemon's fields (global_capacity,
// global_inflight, host, pid, port, sessions, started_at, t, tool_count,
// uptime_human) plus state, connections, per-scope capacity/in_use/waiting,
// in-flight calls, cached results, circuits, counters, rss_bytes, and
// "healthy" with "degraded_reasons". Healthy means: serving, the global scope
// and every provider scope have free capacity, and no circuit is open.
nlohmann::json health_json(const HealthInputs& inputs);

// "3d 4h 5m 6s" (leading zero units omitted; "0s" for zero).
std::string uptime_human(std::chrono::seconds uptime);

// Resident set size of this process from /proc/self/statm, or 0 if unknown.
std::int64_t process_rss_bytes();

} // namespace exai::core
