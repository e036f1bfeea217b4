#pragma once

// The pure side of `exai stress` (SPEC §7): the call mix, latency
// percentiles, outcome tallies, protocol violations, the health baseline
// check and the report. No networking here; net/stress_runner drives the
// daemon and fills these in.

#include <nlohmann/json.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace exai::core::stress {

// The kinds of call a stress run makes (the --mix keys).
enum class CallClass {
  normal,     // one call of --tool
  timeout,    // a chat the fake upstream answers after the daemon's call timeout
  cancel,     // a chat cancelled with cancel_tool once acknowledged
  disconnect, // a chat whose connection is closed mid-call; re-attached by request_id
  duplicate,  // a call whose request_id is sent again once it has finished (replay)
  identical,  // the same chat on several connections at once (coalescing)
  burst,      // more chats on one connection than the session capacity
  malformed,  // a frame that is not JSON (the daemon answers op=error)
  oversize,   // a frame larger than EXAI_WS_MAX_BYTES (the daemon closes with 1009)
};

inline constexpr std::size_t kCallClassCount = 9;
inline constexpr std::array<CallClass, kCallClassCount> kCallClasses = {CallClass::normal,
                                                                        CallClass::timeout,
                                                                        CallClass::cancel,
                                                                        CallClass::disconnect,
                                                                        CallClass::duplicate,
                                                                        CallClass::identical,
                                                                        CallClass::burst,
                                                                        CallClass::malformed,
                                                                        CallClass::oversize};

std::string_view to_string(CallClass value) noexcept;
// The class named `name` ("normal", "timeout", …), or nullopt.
std::optional<CallClass> parse_call_class(std::string_view name) noexcept;

// Relative weights of the call classes; a class with weight 0 never runs.
class Mix {
public:
  void set(CallClass c, unsigned weight) noexcept { weights_.at(index(c)) = weight; }
  unsigned weight(CallClass c) const noexcept { return weights_.at(index(c)); }
  unsigned total() const noexcept;
  // The class for a uniformly random `draw` (any 64-bit value); precondition total() > 0.
  CallClass pick(std::uint64_t draw) const noexcept;
  // "normal=80,cancel=5" (classes with weight 0 left out).
  std::string to_string() const;

private:
  static std::size_t index(CallClass c) noexcept { return static_cast<std::size_t>(c); }
  std::array<unsigned, kCallClassCount> weights_{};
};

// The default mix. `with_timeouts` adds the timeout class, which only makes
// sense against a daemon with a short EXAI_WS_CALL_TIMEOUT_SECS.
Mix default_mix(bool with_timeouts);

// Parses "normal=80,timeout=2,…": known class names, integer weights
// 0..1000000, each class at most once, total > 0. The error text names the
// offending item.
std::variant<Mix, std::string> parse_mix(std::string_view text);

// p50/p95/p99/max of a set of latencies in milliseconds.
struct LatencySummary {
  std::size_t count = 0;
  double p50 = 0;
  double p95 = 0;
  double p99 = 0;
  double max = 0;
};

// The nearest-rank percentile `p` (0 < p <= 100) of `sorted` (ascending);
// 0 for an empty set.
double percentile(const std::vector<double>& sorted, double p) noexcept;

// Sorts `samples` and summarises them.
LatencySummary summarize(std::vector<double> samples);

// One broken promise of the protocol, e.g. kind "missing_result".
struct Violation {
  std::string kind;
  std::string detail;
};

// Violations by kind, keeping the first kKept details of all kinds. Not
// thread-safe: one per load thread, merged at the end.
class ViolationLog {
public:
  static constexpr std::size_t kKept = 50;
  void add(std::string kind, std::string detail);
  void merge(const ViolationLog& other);
  std::size_t total() const noexcept { return total_; }
  bool empty() const noexcept { return total_ == 0; }
  const std::map<std::string, std::size_t>& counts() const noexcept { return counts_; }
  const std::vector<Violation>& kept() const noexcept { return kept_; }

private:
  std::size_t total_ = 0;
  std::map<std::string, std::size_t> counts_;
  std::vector<Violation> kept_;
};

// Outcomes and latencies of finished calls. An outcome is "ok", an error code
// ("CANCELLED", "OVER_CAPACITY", …) or a client-side label ("disconnected",
// "closed_1009"). Not thread-safe: one per load thread, merged at the end.
class Tally {
public:
  void add(CallClass c, const std::string& outcome, double latency_ms);
  void merge(const Tally& other);

  std::size_t calls() const noexcept { return calls_; }
  // Calls whose outcome is not "ok".
  std::size_t errors() const noexcept;
  const std::map<std::string, std::size_t>& outcomes() const noexcept { return outcomes_; }
  // Outcome counts per call class.
  const std::map<std::string, std::map<std::string, std::size_t>>& by_class() const noexcept
  {
    return by_class_;
  }
  // Latency summaries per outcome, plus "all".
  std::map<std::string, LatencySummary> latency() const;

private:
  std::size_t calls_ = 0;
  std::map<std::string, std::size_t> outcomes_;
  std::map<std::string, std::map<std::string, std::size_t>> by_class_;
  std::map<std::string, std::vector<double>> samples_;
};

// The part of a health object the baseline check reads.
struct ScopeUse {
  std::string name; // "global", "provider kimi", "sessions", "conversations"
  std::int64_t in_use = 0;
  std::int64_t waiting = 0;
};

struct HealthSnapshot {
  std::string state;
  std::vector<ScopeUse> scopes;
  std::int64_t sessions = 0;
  std::int64_t connections = 0;
  std::optional<std::int64_t> inflight_calls;
  std::optional<std::int64_t> executions;
  std::optional<std::int64_t> queued;
  std::optional<std::int64_t> rss_bytes;
  std::optional<std::int64_t> session_capacity; // capacity.sessions.capacity
};

// Reads the health object (the "health" of a health_res, or GET /health).
// The error text names the first missing or mistyped field.
std::variant<HealthSnapshot, std::string> parse_health(const nlohmann::json& health);

// How far RSS may grow over a run: a percentage of the RSS before the run
// ("25%") or an absolute size ("64MB", "512KB", "1GB"; a bare number is MB).
struct RssTolerance {
  bool percent = false;
  double value = 64; // percent, or MB
  // The allowed growth in bytes over `before_bytes`.
  std::int64_t allowance(std::int64_t before_bytes) const noexcept;
  std::string to_string() const;
};

std::variant<RssTolerance, std::string> parse_rss_tolerance(std::string_view text);

// The leaks `after` shows against `before`: any scope with in_use or waiting
// above 0, in-flight calls, executions or queued calls above 0, more sessions
// than before, RSS grown beyond `tolerance`. Empty when back to baseline.
std::vector<Violation> baseline_problems(const HealthSnapshot& before,
                                         const HealthSnapshot& after,
                                         const RssTolerance& tolerance);

// Health as JSON for the report.
nlohmann::json to_json(const HealthSnapshot& health);

// Everything a stress run found.
struct Report {
  std::string target;
  std::size_t connections = 0;
  std::size_t concurrency = 0;
  std::uint64_t seed = 0;
  std::string mix;
  double elapsed_s = 0; // the load phase
  Tally tally;
  ViolationLog violations; // protocol, during the load
  std::size_t refused = 0; // connections the daemon would not admit (not a violation)
  std::string refused_reason;
  nlohmann::json hostile; // what `--hostile` ran, when it did (else null)
  bool baseline_checked = false;
  std::optional<HealthSnapshot> before;
  std::optional<HealthSnapshot> after;
  double drain_s = 0;
  std::vector<Violation> leaks; // baseline problems after draining
  RssTolerance rss_tolerance;

  double calls_per_second() const noexcept;
  bool passed() const noexcept;
  nlohmann::json to_json() const;
  std::string to_text() const;
};

} // namespace exai::core::stress
