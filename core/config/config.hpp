#pragma once

#include "core/capacity/shared_capacity.hpp"
#include "core/config/price_table.hpp"
#include "core/config/redis_url.hpp"
#include "core/config/settings.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace exai::core {

using Millis = std::chrono::milliseconds;

// EXAI_WS_REUSE_SCOPE: identical calls share an execution (and a cached
// result) only within one session, among clients of the same token, or
// daemon-wide.
enum class ReuseScope { session, token, global };

// Everything `exai serve` (and the clients that find it: health, stress, mcp)
// reads from the environment, typed and validated. Durations accept decimal
// seconds ("1.5"); counts accept integers. Defaults are SPEC §1's.
struct DaemonConfig {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8079;
  std::string token; // empty = no auth; else >= 16 characters
  std::size_t max_bytes = 33554432;
  Millis hello_timeout{15000};
  Millis ping_interval{30000};
  Millis ping_timeout{10000};
  Millis progress_interval{8000};
  std::size_t global_max_inflight = 24;
  std::size_t kimi_max_inflight = 6;
  std::size_t glm_max_inflight = 4;
  std::size_t session_max_inflight = 8;
  std::size_t conversation_max_inflight = 1;
  Millis acquire_timeout{10000}; // 0 = try once
  Millis call_timeout{270000};
  Millis result_ttl{600000};
  std::size_t result_cache_max = 10000;
  std::set<std::string, std::less<>> disable_coalesce_tools;
  // Who may share an identical call's execution or cached result.
  ReuseScope reuse_scope = ReuseScope::session;
  // Byte budgets of the stores (SPEC §3 "memory is bounded in bytes").
  std::size_t result_max_bytes = std::size_t{256} << 20U;
  std::size_t reuse_max_bytes = std::size_t{64} << 20U;
  std::size_t conversation_max_bytes = std::size_t{256} << 20U;
  std::size_t session_max_queued = 256; // calls of one session waiting for capacity
  std::size_t max_connections = 1000;
  std::size_t max_connections_per_ip = 100; // remote peers only; loopback is one local peer
  // Connections that have not said hello / not sent a complete HTTP request.
  std::size_t max_pending = 256;
  std::size_t pending_max_bytes = 65536; // what such a connection may make us buffer
  // Request bodies larger than pending_max_bytes being received at once, all
  // connections together (EXAI_HTTP_BODIES_MAX_BYTES; unset: 4 x max_bytes).
  std::size_t http_bodies_max_bytes = std::size_t{128} << 20U;
  Millis http_request_timeout{10000}; // whole request: head and body
  Millis http_keepalive{30000};       // an idle keep-alive connection waits this long
  std::size_t http_threads = 4;       // run complete HTTP requests
  std::size_t send_queue_bytes = std::size_t{16} << 20U; // per connection, before it counts as slow
  Millis slow_client_timeout{10000}; // over the send queue bound this long: closed (1008)
  Millis session_timeout{3600000};
  Millis shutdown_grace{30000};
  Millis health_interval{10000};
  std::size_t worker_threads = 2; // event loops (the network side)
  // How long an event loop polls instead of sleeping after a short idle gap.
  std::chrono::microseconds busy_poll{100};
  std::size_t call_threads = 256; // most threads blocking on capacity or a model
  std::size_t max_queued = 4096;  // calls waiting for a call thread before OVER_CAPACITY
  Millis conversation_ttl{10800000};
  std::size_t conversation_max = 10000;
  int conversation_max_turns = 20;
  std::string state_dir; // resolved: EXAI_STATE_DIR, $XDG_STATE_HOME/exai, ~/.local/state/exai
  std::vector<std::string> allowed_origins;
  // Files and images tools may read (EXAI_FILE_ROOTS, colon-separated
  // absolute paths; default the daemon user's home directory).
  std::vector<std::string> file_roots;
  std::size_t file_max_bytes = std::size_t{1} << 20U;   // one file embedded as text
  std::size_t image_max_bytes = std::size_t{10} << 20U; // one image (file or data: URL)
  // An idle pooled upstream connection is closed after this long
  // (EXAI_UPSTREAM_IDLE_SECS; 0 = no keep-alive, one connection per request).
  Millis upstream_idle{30000};
  // Ask providers to stream (`stream: true`, SSE) so progress carries partial
  // output (EXAI_UPSTREAM_STREAM).
  bool upstream_stream = true;
  // A streamed answer silent this long is aborted as a provider timeout and
  // retried (EXAI_UPSTREAM_STALL_SECS).
  Millis upstream_stall{60000};
  // Model calls admitted on an event loop run their upstream exchanges on
  // that loop and finish there, without a call thread
  // (EXAI_UPSTREAM_ON_LOOPS; false: every model call runs on a call thread).
  bool upstream_on_loops = true;
  // Prices per million tokens by canonical model name (EXAI_PRICES); empty =
  // no cost accounting.
  PriceTable prices;

  // Tool visibility, as the original daemon's variables (names lower-cased):
  // DISABLED_TOOLS, LEAN_MODE + LEAN_TOOLS, STRICT_LEAN, DIAGNOSTICS.
  std::set<std::string, std::less<>> disabled_tools;
  bool lean_mode = false;
  std::vector<std::string> lean_tools; // empty: the default lean set
  bool strict_lean = false;
  bool diagnostics = false;

  // The tool-call log ($EXAI_STATE_DIR/toolcalls.jsonl): rotated past
  // EXAI_TOOLCALL_LOG_MAX_BYTES, EXAI_TOOLCALL_LOG_KEEP old files kept;
  // arguments and outputs only with EXAI_TOOLCALL_LOG_CONTENT=true.
  std::size_t toolcall_log_max_bytes = std::size_t{10} << 20U;
  int toolcall_log_keep = 3;
  bool toolcall_log_content = false;

  // The operator page at / and its snapshot GET /api/top (EXAI_UI, default
  // on); prompt and answer excerpts in it only with EXAI_UI_SHOW_CONTENT=true.
  bool ui = true;
  bool ui_show_content = false;

  // The largest file an upload tool sends to a provider (EXAI_UPLOAD_MAX_BYTES).
  std::size_t upload_max_bytes = std::size_t{20} << 20U;

  // Shared capacity, conversations and results through Redis (SPEC §9).
  // No URL (EXAI_REDIS_URL unset): everything stays in this process.
  std::optional<RedisUrl> redis;
  SharedFailureMode redis_failure = SharedFailureMode::local; // EXAI_REDIS_FAILURE
  double redis_local_share = 0.5;     // EXAI_REDIS_LOCAL_SHARE: of each shared limit
  Millis redis_lease_ttl{10000};      // EXAI_REDIS_LEASE_TTL_SECS
  Millis redis_timeout{1000};         // EXAI_REDIS_TIMEOUT_SECS: one round trip
  std::string redis_prefix = "exai:"; // EXAI_REDIS_PREFIX: every key starts with it
  // EXAI_REDIS_WRITE_QUEUE_MAX_BYTES: results and turns waiting to be written
  std::size_t redis_write_queue_max_bytes = std::size_t{64} << 20U;
};

// Reads and validates every setting in DaemonConfig. Throws
// Error(config_invalid) whose message names the variable, the value given and
// the allowed range — never falls back to a default for a bad value.
DaemonConfig load_daemon_config(const Settings& settings);

// Reads one integer setting within [min, max]; `fallback` when unset or empty.
// Throws Error(config_invalid) naming `name`, the value and the range.
std::int64_t read_int(const Settings& settings,
                      std::string_view name,
                      std::int64_t fallback,
                      std::int64_t min,
                      std::int64_t max);

// Reads a duration given in (decimal) seconds within [min_s, max_s].
Millis read_seconds(
    const Settings& settings, std::string_view name, Millis fallback, double min_s, double max_s);

// Reads a boolean setting: true/false, 1/0, yes/no, on/off (any case);
// `fallback` when unset or empty. Throws Error(config_invalid) naming `name`
// and the value otherwise.
bool read_bool(const Settings& settings, std::string_view name, bool fallback);

// Splits "a, b,,c" into {"a","b","c"} (trimmed, empties dropped).
std::vector<std::string> split_list(std::string_view text);

} // namespace exai::core
