#include "core/stress/stress_report.hpp"

#include "core/util/text.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>

namespace exai::core::stress {

namespace {

constexpr std::array<std::string_view, kCallClassCount> kClassNames = {"normal",
                                                                       "timeout",
                                                                       "cancel",
                                                                       "disconnect",
                                                                       "duplicate",
                                                                       "identical",
                                                                       "burst",
                                                                       "malformed",
                                                                       "oversize"};

constexpr unsigned kMaxWeight = 1000000;
constexpr double kMiB = 1024.0 * 1024.0;

// A non-negative integer field of `object`; nullopt when absent or mistyped.
std::optional<std::int64_t>
integer(const nlohmann::json& object, std::string_view key)
{
  if (!object.is_object()) {
    return std::nullopt;
  }
  const auto it = object.find(key);
  if (it == object.end() || !it->is_number()) {
    return std::nullopt;
  }
  if (it->is_number_float()) {
    return static_cast<std::int64_t>(it->get<double>());
  }
  return it->get<std::int64_t>();
}

// Adds the scope `object` ({capacity,in_use,waiting,…}) as `name`; an error
// text when it lacks in_use or waiting.
std::optional<std::string>
add_scope(std::vector<ScopeUse>& scopes, const std::string& name, const nlohmann::json& object)
{
  const auto in_use = integer(object, "in_use");
  const auto waiting = integer(object, "waiting");
  if (!in_use || !waiting) {
    return "health: capacity scope " + name + " lacks in_use/waiting";
  }
  scopes.push_back({name, *in_use, *waiting});
  return std::nullopt;
}

nlohmann::json
summary_json(const LatencySummary& s)
{
  return {{"count", s.count}, {"p50", s.p50}, {"p95", s.p95}, {"p99", s.p99}, {"max", s.max}};
}

std::string
megabytes(std::int64_t bytes)
{
  return fmt::format("{:.1f} MB", static_cast<double>(bytes) / kMiB);
}

} // namespace

std::string_view
to_string(CallClass value) noexcept
{
  return kClassNames.at(static_cast<std::size_t>(value));
}

std::optional<CallClass>
parse_call_class(std::string_view name) noexcept
{
  for (std::size_t i = 0; i < kClassNames.size(); ++i) {
    if (kClassNames.at(i) == name) {
      return kCallClasses.at(i);
    }
  }
  return std::nullopt;
}

unsigned
Mix::total() const noexcept
{
  unsigned sum = 0;
  for (const unsigned w : weights_) {
    sum += w;
  }
  return sum;
}

CallClass
Mix::pick(std::uint64_t draw) const noexcept
{
  const unsigned sum = total();
  std::uint64_t point = sum == 0 ? 0 : draw % sum;
  for (std::size_t i = 0; i < weights_.size(); ++i) {
    if (point < weights_.at(i)) {
      return kCallClasses.at(i);
    }
    point -= weights_.at(i);
  }
  return CallClass::normal;
}

std::string
Mix::to_string() const
{
  std::string out;
  for (std::size_t i = 0; i < weights_.size(); ++i) {
    if (weights_.at(i) == 0) {
      continue;
    }
    if (!out.empty()) {
      out += ',';
    }
    out += fmt::format("{}={}", kClassNames.at(i), weights_.at(i));
  }
  return out;
}

Mix
default_mix(bool with_timeouts)
{
  Mix mix;
  mix.set(CallClass::normal, 80);
  mix.set(CallClass::timeout, with_timeouts ? 2 : 0);
  mix.set(CallClass::cancel, 5);
  mix.set(CallClass::disconnect, 3);
  mix.set(CallClass::duplicate, 3);
  mix.set(CallClass::identical, 3);
  mix.set(CallClass::burst, 2);
  mix.set(CallClass::malformed, 1);
  mix.set(CallClass::oversize, 1);
  return mix;
}

std::variant<Mix, std::string>
parse_mix(std::string_view text)
{
  Mix mix;
  std::array<bool, kCallClassCount> seen{};
  while (true) {
    const auto comma = text.find(',');
    const std::string_view item = trim(text.substr(0, comma));
    if (!item.empty()) {
      const auto eq = item.find('=');
      if (eq == std::string_view::npos) {
        return fmt::format("mix item \"{}\" is not class=weight", item);
      }
      const std::string_view name = trim(item.substr(0, eq));
      const std::string_view number = trim(item.substr(eq + 1));
      const auto c = parse_call_class(name);
      if (!c) {
        return fmt::format("unknown call class \"{}\" (one of normal, timeout, cancel, "
                           "disconnect, duplicate, identical, burst, malformed, oversize)",
                           name);
      }
      unsigned weight = 0;
      const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), weight);
      if (ec != std::errc{} || end != number.data() + number.size() || weight > kMaxWeight) {
        return fmt::format(
            "weight of {} must be an integer from 0 to {}, got \"{}\"", name, kMaxWeight, number);
      }
      auto& was_seen = seen.at(static_cast<std::size_t>(*c));
      if (was_seen) {
        return fmt::format("call class {} given twice", name);
      }
      was_seen = true;
      mix.set(*c, weight);
    }
    if (comma == std::string_view::npos) {
      break;
    }
    text.remove_prefix(comma + 1);
  }
  if (mix.total() == 0) {
    return std::string("the mix has no class with a weight above 0");
  }
  return mix;
}

double
percentile(const std::vector<double>& sorted, double p) noexcept
{
  if (sorted.empty()) {
    return 0;
  }
  // Nearest rank: the smallest value with at least p% of the samples at or below it.
  const double rank = std::ceil(p / 100.0 * static_cast<double>(sorted.size()));
  const std::size_t index =
      rank < 1 ? 0 : std::min(sorted.size() - 1, static_cast<std::size_t>(rank) - 1);
  return sorted[index];
}

LatencySummary
summarize(std::vector<double> samples)
{
  std::sort(samples.begin(), samples.end());
  LatencySummary s;
  s.count = samples.size();
  s.p50 = percentile(samples, 50);
  s.p95 = percentile(samples, 95);
  s.p99 = percentile(samples, 99);
  s.max = samples.empty() ? 0 : samples.back();
  return s;
}

void
ViolationLog::add(std::string kind, std::string detail)
{
  ++total_;
  ++counts_[kind];
  if (kept_.size() < kKept) {
    kept_.push_back({std::move(kind), std::move(detail)});
  }
}

void
ViolationLog::merge(const ViolationLog& other)
{
  total_ += other.total_;
  for (const auto& [kind, n] : other.counts_) {
    counts_[kind] += n;
  }
  for (const auto& v : other.kept_) {
    if (kept_.size() >= kKept) {
      break;
    }
    kept_.push_back(v);
  }
}

void
Tally::add(CallClass c, const std::string& outcome, double latency_ms)
{
  ++calls_;
  ++outcomes_[outcome];
  ++by_class_[std::string(to_string(c))][outcome];
  samples_[outcome].push_back(latency_ms);
}

void
Tally::merge(const Tally& other)
{
  calls_ += other.calls_;
  for (const auto& [outcome, n] : other.outcomes_) {
    outcomes_[outcome] += n;
  }
  for (const auto& [c, outcomes] : other.by_class_) {
    auto& mine = by_class_[c];
    for (const auto& [outcome, n] : outcomes) {
      mine[outcome] += n;
    }
  }
  for (const auto& [outcome, samples] : other.samples_) {
    auto& mine = samples_[outcome];
    mine.insert(mine.end(), samples.begin(), samples.end());
  }
}

std::size_t
Tally::errors() const noexcept
{
  const auto ok = outcomes_.find("ok");
  return calls_ - (ok == outcomes_.end() ? 0 : ok->second);
}

std::map<std::string, LatencySummary>
Tally::latency() const
{
  std::map<std::string, LatencySummary> out;
  std::vector<double> all;
  for (const auto& [outcome, samples] : samples_) {
    out[outcome] = summarize(samples);
    all.insert(all.end(), samples.begin(), samples.end());
  }
  out["all"] = summarize(std::move(all));
  return out;
}

std::variant<HealthSnapshot, std::string>
parse_health(const nlohmann::json& health)
{
  if (!health.is_object()) {
    return std::string("health: not a JSON object");
  }
  HealthSnapshot s;
  if (const auto it = health.find("state"); it != health.end() && it->is_string()) {
    s.state = it->get<std::string>();
  }
  const auto sessions = integer(health, "sessions");
  if (!sessions) {
    return std::string("health: no sessions count");
  }
  s.sessions = *sessions;
  s.connections = integer(health, "connections").value_or(0);
  s.inflight_calls = integer(health, "inflight_calls");
  if (!s.inflight_calls) {
    return std::string("health: no inflight_calls count");
  }
  s.executions = integer(health, "executions");
  s.queued = integer(health, "queued");
  s.rss_bytes = integer(health, "rss_bytes");

  const auto capacity = health.find("capacity");
  if (capacity == health.end() || !capacity->is_object()) {
    return std::string("health: no capacity object");
  }
  const auto global = capacity->find("global");
  if (global == capacity->end()) {
    return std::string("health: no capacity.global scope");
  }
  if (auto problem = add_scope(s.scopes, "global", *global)) {
    return *problem;
  }
  if (const auto providers = capacity->find("providers");
      providers != capacity->end() && providers->is_object()) {
    for (const auto& [name, scope] : providers->items()) {
      if (auto problem = add_scope(s.scopes, "provider " + name, scope)) {
        return *problem;
      }
    }
  }
  for (const char* name : {"sessions", "conversations"}) {
    if (const auto scope = capacity->find(name); scope != capacity->end()) {
      if (auto problem = add_scope(s.scopes, name, *scope)) {
        return *problem;
      }
    }
  }
  if (const auto scope = capacity->find("sessions"); scope != capacity->end()) {
    s.session_capacity = integer(*scope, "capacity");
  }
  return s;
}

std::int64_t
RssTolerance::allowance(std::int64_t before_bytes) const noexcept
{
  if (percent) {
    return static_cast<std::int64_t>(static_cast<double>(before_bytes) * value / 100.0);
  }
  return static_cast<std::int64_t>(value * kMiB);
}

std::string
RssTolerance::to_string() const
{
  return percent ? fmt::format("{:g}%", value) : fmt::format("{:g}MB", value);
}

std::variant<RssTolerance, std::string>
parse_rss_tolerance(std::string_view text)
{
  const std::string_view original = text;
  text = trim(text);
  RssTolerance t;
  double scale = 1; // to MB
  const auto ends_with = [&text](std::string_view suffix) {
    if (text.size() >= suffix.size() &&
        std::equal(suffix.begin(), suffix.end(), text.end() - suffix.size(), [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(b)) == a;
        })) {
      text.remove_suffix(suffix.size());
      return true;
    }
    return false;
  };
  if (ends_with("%")) {
    t.percent = true;
  } else if (ends_with("kb") || ends_with("k")) {
    scale = 1.0 / 1024.0;
  } else if (ends_with("gb") || ends_with("g")) {
    scale = 1024.0;
  } else if (ends_with("mb") || ends_with("m")) {
    scale = 1;
  }
  text = trim(text);
  double number = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
  if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || number < 0 ||
      !std::isfinite(number)) {
    return fmt::format("RSS tolerance \"{}\" is not a percentage (\"25%\") or a size (\"64MB\")",
                       original);
  }
  t.value = number * scale;
  return t;
}

std::vector<Violation>
baseline_problems(const HealthSnapshot& before,
                  const HealthSnapshot& after,
                  const RssTolerance& tolerance)
{
  std::vector<Violation> out;
  for (const auto& scope : after.scopes) {
    if (scope.in_use != 0) {
      out.push_back({"capacity_leak",
                     fmt::format("scope {} in_use={} after the run", scope.name, scope.in_use)});
    }
    if (scope.waiting != 0) {
      out.push_back({"capacity_leak",
                     fmt::format("scope {} waiting={} after the run", scope.name, scope.waiting)});
    }
  }
  const auto check_zero = [&out](const char* name, const std::optional<std::int64_t>& value) {
    if (value && *value != 0) {
      out.push_back({"inflight_leak", fmt::format("{}={} after the run", name, *value)});
    }
  };
  check_zero("inflight_calls", after.inflight_calls);
  check_zero("executions", after.executions);
  check_zero("queued", after.queued);
  if (after.sessions > before.sessions) {
    out.push_back({"session_leak",
                   fmt::format("sessions={} after the run, {} before (a daemon keeps a closed "
                               "connection's session resumable for SESSION_TIMEOUT_SECS)",
                               after.sessions,
                               before.sessions)});
  }
  if (before.rss_bytes && after.rss_bytes) {
    const std::int64_t growth = *after.rss_bytes - *before.rss_bytes;
    const std::int64_t allowed = tolerance.allowance(*before.rss_bytes);
    if (growth > allowed) {
      out.push_back({"rss_growth",
                     fmt::format("RSS grew by {} (from {} to {}), more than the tolerance {}",
                                 megabytes(growth),
                                 megabytes(*before.rss_bytes),
                                 megabytes(*after.rss_bytes),
                                 tolerance.to_string())});
    }
  }
  return out;
}

nlohmann::json
to_json(const HealthSnapshot& health)
{
  nlohmann::json scopes = nlohmann::json::object();
  for (const auto& scope : health.scopes) {
    scopes[scope.name] = {{"in_use", scope.in_use}, {"waiting", scope.waiting}};
  }
  const auto optional = [](const std::optional<std::int64_t>& v) {
    return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
  };
  return {{"state", health.state},
          {"sessions", health.sessions},
          {"connections", health.connections},
          {"inflight_calls", optional(health.inflight_calls)},
          {"executions", optional(health.executions)},
          {"queued", optional(health.queued)},
          {"rss_bytes", optional(health.rss_bytes)},
          {"scopes", scopes}};
}

double
Report::calls_per_second() const noexcept
{
  return elapsed_s > 0 ? static_cast<double>(tally.calls()) / elapsed_s : 0;
}

bool
Report::passed() const noexcept
{
  return violations.empty() && leaks.empty() && baseline_checked;
}

nlohmann::json
Report::to_json() const
{
  nlohmann::json latency = nlohmann::json::object();
  for (const auto& [outcome, summary] : tally.latency()) {
    latency[outcome] = summary_json(summary);
  }
  nlohmann::json kept = nlohmann::json::array();
  for (const auto& v : violations.kept()) {
    kept.push_back({{"kind", v.kind}, {"detail", v.detail}});
  }
  nlohmann::json leak_list = nlohmann::json::array();
  for (const auto& v : leaks) {
    leak_list.push_back({{"kind", v.kind}, {"detail", v.detail}});
  }
  nlohmann::json baseline = {{"checked", baseline_checked},
                             {"passed", baseline_checked && leaks.empty()},
                             {"drain_s", drain_s},
                             {"rss_tolerance", rss_tolerance.to_string()},
                             {"problems", leak_list}};
  baseline["before"] = before ? stress::to_json(*before) : nlohmann::json(nullptr);
  baseline["after"] = after ? stress::to_json(*after) : nlohmann::json(nullptr);
  return {{"passed", passed()},
          {"target", target},
          {"connections", connections},
          {"concurrency", concurrency},
          {"seed", seed},
          {"mix", mix},
          {"elapsed_s", elapsed_s},
          {"calls", tally.calls()},
          {"errors", tally.errors()},
          {"calls_per_s", calls_per_second()},
          {"outcomes", tally.outcomes()},
          {"classes", tally.by_class()},
          {"latency_ms", latency},
          {"violations",
           {{"total", violations.total()}, {"by_kind", violations.counts()}, {"first", kept}}},
          {"refused", {{"connections", refused}, {"reason", refused_reason}}},
          {"hostile", hostile},
          {"baseline", baseline}};
}

std::string
Report::to_text() const
{
  std::string out;
  auto line = [&out](const std::string& text) {
    out += text;
    out += '\n';
  };
  line(fmt::format("exai stress: target={} connections={} concurrency={} seed={}",
                   target,
                   connections,
                   concurrency,
                   seed));
  line(fmt::format("mix: {}", mix));
  line(fmt::format("calls: {} in {:.2f} s = {:.1f} calls/s, {} not ok",
                   tally.calls(),
                   elapsed_s,
                   calls_per_second(),
                   tally.errors()));
  line(fmt::format("{:<22} {:>8} {:>9} {:>9} {:>9} {:>9}",
                   "outcome",
                   "count",
                   "p50 ms",
                   "p95 ms",
                   "p99 ms",
                   "max ms"));
  const auto latency = tally.latency();
  for (const auto& [outcome, s] : latency) {
    if (outcome == "all") {
      continue; // printed last
    }
    line(fmt::format("{:<22} {:>8} {:>9.3f} {:>9.3f} {:>9.3f} {:>9.3f}",
                     outcome,
                     s.count,
                     s.p50,
                     s.p95,
                     s.p99,
                     s.max));
  }
  if (const auto all = latency.find("all"); all != latency.end()) {
    const auto& s = all->second;
    line(fmt::format("{:<22} {:>8} {:>9.3f} {:>9.3f} {:>9.3f} {:>9.3f}",
                     "all",
                     s.count,
                     s.p50,
                     s.p95,
                     s.p99,
                     s.max));
  }
  for (const auto& [c, outcomes] : tally.by_class()) {
    std::string parts;
    for (const auto& [outcome, n] : outcomes) {
      parts += fmt::format(" {}={}", outcome, n);
    }
    line(fmt::format("class {}:{}", c, parts));
  }
  if (refused > 0) {
    line(fmt::format("refused by the daemon: {} connections ({})", refused, refused_reason));
  }
  if (hostile.is_object()) {
    std::string parts;
    for (const auto& [kind, counts] : hostile.items()) {
      parts += fmt::format(" {}={}/{}", kind, counts.value("cut", 0), counts.value("opened", 0));
    }
    line(fmt::format("hostile clients (cut by the daemon / opened):{}", parts));
  }
  if (violations.empty()) {
    line("violations: none");
  } else {
    std::string parts;
    for (const auto& [kind, n] : violations.counts()) {
      parts += fmt::format(" {}={}", kind, n);
    }
    line(fmt::format("violations: {} ({})", violations.total(), trim(parts)));
    for (const auto& v : violations.kept()) {
      line(fmt::format("  VIOLATION {}: {}", v.kind, v.detail));
    }
  }
  if (!baseline_checked) {
    line("baseline: NOT CHECKED");
    for (const auto& v : leaks) {
      line(fmt::format("  PROBLEM {}: {}", v.kind, v.detail));
    }
  } else if (leaks.empty()) {
    line(fmt::format("baseline: ok after {:.2f} s (all scopes idle, no in-flight calls, "
                     "sessions {} -> {}, RSS {} -> {}, tolerance {})",
                     drain_s,
                     before ? before->sessions : 0,
                     after ? after->sessions : 0,
                     before && before->rss_bytes ? megabytes(*before->rss_bytes) : "n/a",
                     after && after->rss_bytes ? megabytes(*after->rss_bytes) : "n/a",
                     rss_tolerance.to_string()));
  } else {
    line(fmt::format("baseline: FAILED after waiting {:.2f} s", drain_s));
    for (const auto& v : leaks) {
      line(fmt::format("  LEAK {}: {}", v.kind, v.detail));
    }
  }
  line(passed() ? "result: PASS" : "result: FAIL");
  return out;
}

} // namespace exai::core::stress
