#pragma once

// The load engine of `exai stress` (SPEC §7): many WebSocket client
// connections to a daemon, driven by a few threads (each owns its share of
// the connections and an epoll set; no thread per connection), making calls
// of the classes in core::stress::Mix and checking the op protocol as frames
// arrive. Plus the blocking control connection used for the health baseline.

#include "core/config/config.hpp"
#include "core/stress/stress_report.hpp"
#include "net/clients/daemon_session.hpp"

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

namespace exai::net {

// The daemon cannot be reached, or refuses (see daemon_session.hpp): a
// refusal is an outcome of the load, reported with the daemon's reason — not a
// protocol violation.
using StressUnreachable = DaemonUnreachable;
using StressRefused = DaemonRefused;

struct StressOptions {
  DaemonAddress target;
  std::size_t connections = 16;
  std::size_t calls = 1000; // scenarios to start; 0 = no limit (needs duration)
  std::optional<std::chrono::milliseconds> duration; // stop starting scenarios after this
  std::size_t concurrency = 0;  // scenarios in flight at once; 0 = one per connection
  std::string tool = "version"; // the tool of "normal" and "duplicate" calls
  std::string model;            // chat model of the chat-based classes; empty = daemon default
  core::stress::Mix mix = core::stress::default_mix(false);
  std::uint64_t seed = 1;
  std::size_t threads = 0; // load threads; 0 = min(4, hardware threads)
  // The daemon's settings; the defaults are the daemon's defaults.
  std::size_t max_bytes = core::DaemonConfig{}.max_bytes; // oversize frames send one more
  std::size_t burst_size = core::DaemonConfig{}.session_max_inflight + 4; // calls of one burst
  std::chrono::milliseconds call_timeout = core::DaemonConfig{}.call_timeout;
  std::chrono::milliseconds acquire_timeout = core::DaemonConfig{}.acquire_timeout;
  std::chrono::milliseconds cancel_sleep{1000}; // fake upstream delay of cancelled chats
  // Wait for outstanding results after the load; a call still unanswered
  // acquire_timeout + call_timeout + drain_timeout after it was sent is
  // reported missing even while the load runs.
  std::chrono::milliseconds drain_timeout{30000};
  std::chrono::milliseconds hold{0};           // keep the connections idle before the load
  std::chrono::milliseconds io_timeout{10000}; // connect, hello and single-frame I/O
};

// Counters a load thread publishes while running (for the progress line).
struct StressProgress {
  std::size_t calls = 0;
  std::size_t errors = 0;
  std::size_t violations = 0;
  std::size_t inflight = 0;
  std::size_t connections = 0;
};

struct LoadResult {
  core::stress::Tally tally;
  core::stress::ViolationLog violations;
  std::size_t refused = 0;    // connections the daemon would not admit
  std::string refused_reason; // the first one's, as the daemon put it
  double elapsed_s = 0;       // from the first call to the last result
  std::size_t connections = 0;
  std::size_t concurrency = 0;
};

// Runs one stress load. Single use.
class StressRunner {
public:
  explicit StressRunner(StressOptions options);
  ~StressRunner();
  StressRunner(const StressRunner&) = delete;
  StressRunner& operator=(const StressRunner&) = delete;

  // Opens every connection (hello included), holds them idle for
  // options.hold, runs the load until the call budget or the duration is
  // used up, waits up to drain_timeout for every outstanding call_tool_res,
  // then closes the connections. `tick` is called about once a second on
  // this thread. Throws StressUnreachable when not even one connection could
  // be opened; a failure of some connections is a violation.
  LoadResult run(const std::function<void(const StressProgress&)>& tick);

  struct Worker; // one load thread and its connections (stress_runner.cpp)
  struct Shared; // what the load threads share (stress_runner.cpp)

private:
  StressOptions options_;
};

// A blocking connection for control operations (health), said hello on.
class ControlConnection {
public:
  // Connects and says hello; throws StressUnreachable naming the reason.
  ControlConnection(const DaemonAddress& target, std::chrono::milliseconds timeout);
  ~ControlConnection();
  ControlConnection(const ControlConnection&) = delete;
  ControlConnection& operator=(const ControlConnection&) = delete;

  // The `health` object of a health_res, or nullopt when the daemon does not
  // answer in time or the connection is gone (`error` says why).
  std::optional<nlohmann::json> health(std::chrono::milliseconds timeout, std::string& error);

  // Keeps an otherwise silent connection alive through a long run: answers
  // the daemon's pings that arrived meanwhile and sends a ping of its own
  // when nothing was sent for a second, so EXAI_WS_PING_TIMEOUT never drops
  // it. Never blocks; call it from the progress tick.
  void keep_alive();

  struct Impl;

private:
  std::unique_ptr<Impl> impl_;
};

} // namespace exai::net
