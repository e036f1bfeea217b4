// exai stress: load and leak check against a running daemon (SPEC §7).

#include "cmd/command.hpp"
#include "core/config/config.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "core/stress/stress_report.hpp"
#include "core/util/descriptor_limit.hpp"
#include "net/clients/hostile_clients.hpp"
#include "net/clients/stress_runner.hpp"

#include <fmt/format.h>

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
#include <variant>
#include <vector>

namespace exai::cmd {

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// SPEC §1: stress exits 2 when the daemon cannot be reached.
constexpr int kExitUnreachable = 2;
// Timeout calls join the default mix only against a daemon whose call
// timeout is this short (else one such call would take minutes).
constexpr auto kShortCallTimeout = 10s;
constexpr auto kHealthTimeout = 5s;
constexpr auto kDrainPoll = 50ms;

// Defaults are the load engine's (net::StressOptions), stated once there.
struct StressFlags {
  std::string url;
  std::string host;
  int port = -1;
  std::size_t connections = net::StressOptions{}.connections;
  std::size_t calls = net::StressOptions{}.calls;
  double duration_s = 0;
  std::size_t concurrency = 0;
  std::string tool = net::StressOptions{}.tool;
  std::string model;
  std::string mix;
  std::uint64_t seed = net::StressOptions{}.seed;
  bool json = false;
  std::string rss_tolerance = "64MB";
  double drain_timeout_s =
      std::chrono::duration<double>(net::StressOptions{}.drain_timeout).count();
  std::size_t max_bytes = 0;
  std::size_t threads = 0;
  double hold_s = 0;
  bool calls_given = false;
  bool hostile = false;
  std::string targets; // --targets URL,URL
};

std::chrono::milliseconds
millis(double seconds)
{
  return std::chrono::milliseconds(static_cast<std::int64_t>(seconds * 1000.0));
}

// Prints (or overwrites) the progress line on stderr.
class ProgressLine {
public:
  explicit ProgressLine(bool enabled)
      : enabled_(enabled)
  {
  }

  void update(const net::StressProgress& p)
  {
    if (!enabled_) {
      return;
    }
    const auto now = Clock::now();
    const double seconds = std::chrono::duration<double>(now - last_time_).count();
    const double rate =
        seconds > 0 ? static_cast<double>(p.calls - std::min(p.calls, last_calls_)) / seconds : 0;
    last_time_ = now;
    last_calls_ = p.calls;
    std::fprintf(stderr,
                 "\rexai stress: %zu calls, %.0f calls/s, %zu errors, %zu violations, %zu in "
                 "flight, %zu connections   ",
                 p.calls,
                 rate,
                 p.errors,
                 p.violations,
                 p.inflight,
                 p.connections);
    std::fflush(stderr);
    printed_ = true;
  }

  void finish()
  {
    if (printed_) {
      std::fputs("\n", stderr);
      printed_ = false;
    }
  }

private:
  bool enabled_;
  bool printed_ = false;
  Clock::time_point last_time_ = Clock::now();
  std::size_t last_calls_ = 0;
};

// Reads the daemon's health and parses the baseline part; nullopt (with the
// reason in `error`) when it cannot.
std::optional<core::stress::HealthSnapshot>
snapshot(net::ControlConnection& control, std::string& error)
{
  const auto health = control.health(kHealthTimeout, error);
  if (!health) {
    return std::nullopt;
  }
  auto parsed = core::stress::parse_health(*health);
  if (auto* problem = std::get_if<std::string>(&parsed)) {
    error = *problem;
    return std::nullopt;
  }
  return std::get<core::stress::HealthSnapshot>(std::move(parsed));
}

int
unreachable(const StressFlags& flags, const std::string& target, const std::string& reason)
{
  core::log::get("cmd")->error("stress target unreachable url={} error=\"{}\"", target, reason);
  if (flags.json) {
    std::cout << nlohmann::json{{"passed", false},
                                {"unreachable", true},
                                {"target", target},
                                {"error", reason}}
                     .dump()
              << "\n";
  }
  return kExitUnreachable;
}

// Loads one daemon, waits for it to drain and checks its baseline, filling
// `report`. Returns "" when done, else why the daemon could not be reached.
std::string
load_target(const StressFlags& flags,
            net::StressOptions options,
            std::size_t default_burst,
            bool show_progress,
            core::stress::Report& report)
{
  std::unique_ptr<net::ControlConnection> control;
  try {
    control = std::make_unique<net::ControlConnection>(options.target, options.io_timeout);
  } catch (const net::StressUnreachable& e) {
    return e.what();
  }
  std::string health_error;
  report.before = snapshot(*control, health_error);
  if (report.before && report.before->session_capacity && *report.before->session_capacity > 0) {
    options.burst_size = static_cast<std::size_t>(*report.before->session_capacity) + 4;
  } else {
    options.burst_size = default_burst;
  }
  report.mix = options.mix.to_string();
  core::log::get("cmd")->info(
      "stress starting url={} connections={} calls={} duration_s={} mix={} seed={}",
      report.target,
      options.connections,
      options.calls,
      flags.duration_s,
      report.mix,
      options.seed);

  ProgressLine progress(show_progress);
  std::unique_ptr<net::HostileClients> hostile;
  if (flags.hostile) {
    hostile = std::make_unique<net::HostileClients>(
        net::HostileOptions{options.target, 4, options.max_bytes, std::chrono::milliseconds(100)});
    hostile->start();
  }
  net::LoadResult load;
  try {
    net::StressRunner runner(options);
    load = runner.run([&progress, &control](const net::StressProgress& p) {
      progress.update(p);
      // The control connection sits idle for the whole run; unanswered
      // pings would get it dropped before the baseline is read.
      control->keep_alive();
    });
  } catch (const net::StressUnreachable& e) {
    progress.finish();
    return e.what();
  }
  progress.finish();
  if (hostile) {
    // Closed before the baseline is read: their connections must go too.
    report.hostile = hostile->stop();
  }
  report.connections = load.connections;
  report.concurrency = load.concurrency;
  report.elapsed_s = load.elapsed_s;
  report.tally = std::move(load.tally);
  report.violations = std::move(load.violations);
  report.refused = load.refused;
  report.refused_reason = std::move(load.refused_reason);

  // Wait (bounded) for the daemon to drain back to the baseline.
  if (report.before) {
    const auto started = Clock::now();
    const auto deadline = started + options.drain_timeout;
    while (true) {
      report.after = snapshot(*control, health_error);
      if (!report.after) {
        break;
      }
      report.leaks =
          core::stress::baseline_problems(*report.before, *report.after, report.rss_tolerance);
      if (report.leaks.empty() || Clock::now() >= deadline) {
        break;
      }
      std::this_thread::sleep_for(kDrainPoll);
    }
    report.drain_s = std::chrono::duration<double>(Clock::now() - started).count();
  }
  if (report.before && report.after) {
    report.baseline_checked = true;
  } else {
    report.leaks.push_back(
        {"health_unavailable",
         "cannot check the baseline: " +
             (health_error.empty() ? std::string("no health answer") : health_error)});
  }

  return {};
}

// --targets: the load split evenly over several daemons (e.g. sharing limits
// through Redis), all at once; each daemon's baseline is checked on its own.
int
run_targets(const StressFlags& flags,
            const net::StressOptions& base,
            std::size_t default_burst,
            const core::stress::RssTolerance& tolerance)
{
  const std::vector<std::string> urls = core::split_list(flags.targets);
  const std::size_t n = urls.size();
  std::vector<core::stress::Report> reports(n);
  std::vector<std::string> failures(n);
  std::vector<std::thread> threads;
  const auto share = [n](std::size_t total, std::size_t i) {
    return total == 0 ? 0 : std::max<std::size_t>(1, total / n + (i < total % n ? 1 : 0));
  };
  for (std::size_t i = 0; i < n; ++i) {
    net::StressOptions options = base;
    net::apply_url(options.target, urls[i]);
    options.connections = share(base.connections, i);
    options.calls = share(base.calls, i);
    options.concurrency = share(base.concurrency, i);
    options.seed = base.seed + i;
    reports[i].target = options.target.ws_url();
    reports[i].seed = options.seed;
    reports[i].rss_tolerance = tolerance;
    threads.emplace_back([&, i, options] {
      failures[i] = load_target(flags, options, default_burst, false, reports[i]);
    });
  }
  for (auto& thread : threads) {
    thread.join();
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (!failures[i].empty()) {
      return unreachable(flags, reports[i].target, failures[i]);
    }
  }
  bool passed = true;
  std::size_t calls = 0;
  double rate = 0;
  nlohmann::json each = nlohmann::json::array();
  std::string text;
  for (const auto& report : reports) {
    passed = passed && report.passed();
    calls += report.tally.calls();
    if (report.elapsed_s > 0) {
      rate += static_cast<double>(report.tally.calls()) / report.elapsed_s;
    }
    each.push_back(report.to_json());
    text.append("== ").append(report.target).append("\n").append(report.to_text());
  }
  if (flags.json) {
    std::cout << nlohmann::json{{"passed", passed},
                                {"calls", calls},
                                {"calls_per_s", rate},
                                {"targets", std::move(each)}}
                     .dump(2)
              << "\n";
  } else {
    std::cout << text
              << fmt::format("== all {} targets: {} calls, {:.0f} calls/s, {}\n",
                             n,
                             calls,
                             rate,
                             passed ? "passed" : "FAILED");
  }
  std::cout.flush();
  core::log::get("cmd")->info("stress finished targets={} passed={} calls={}", n, passed, calls);
  return passed ? kExitOk : kExitFailure;
}

int
run_stress(const StressFlags& flags, const GlobalOptions& global)
{
  const auto log = core::log::get("cmd");
  const core::Settings::Map settings_flags = endpoint_flags(flags.host, flags.port);
  const core::DaemonConfig config =
      core::load_daemon_config(load_settings(global, std::move(settings_flags)));

  net::StressOptions options;
  options.target = net::DaemonAddress::from(config);
  if (!flags.url.empty()) {
    net::apply_url(options.target, flags.url);
  }
  options.connections = flags.connections;
  options.calls = flags.calls;
  if (flags.duration_s > 0) {
    options.duration = millis(flags.duration_s);
    if (!flags.calls_given) {
      options.calls = 0; // the duration alone ends the load
    }
  }
  options.concurrency = flags.concurrency;
  options.tool = flags.tool;
  options.model = flags.model;
  options.seed = flags.seed;
  options.threads = flags.threads;
  options.max_bytes = flags.max_bytes != 0 ? flags.max_bytes : config.max_bytes;
  options.call_timeout = config.call_timeout;
  options.acquire_timeout = config.acquire_timeout;
  options.drain_timeout = millis(flags.drain_timeout_s);
  options.hold = millis(flags.hold_s);
  if (flags.mix.empty()) {
    options.mix = core::stress::default_mix(config.call_timeout <= kShortCallTimeout);
  } else {
    auto mix = core::stress::parse_mix(flags.mix);
    if (auto* problem = std::get_if<std::string>(&mix)) {
      throw core::Error(core::Errc::config_invalid, "--mix: " + *problem);
    }
    options.mix = std::get<core::stress::Mix>(mix);
  }
  auto tolerance = core::stress::parse_rss_tolerance(flags.rss_tolerance);
  if (auto* problem = std::get_if<std::string>(&tolerance)) {
    throw core::Error(core::Errc::config_invalid, "--rss-tolerance: " + *problem);
  }

  const std::string target = options.target.ws_url();
  ::signal(SIGPIPE, SIG_IGN); // a daemon closing mid-send is an outcome, not a crash
  const auto nofile = core::raise_descriptor_limit();
  if (nofile < options.connections + 64) {
    log->warn("descriptor limit low for the connections asked nofile={} connections={}",
              nofile,
              options.connections);
  }

  if (!flags.targets.empty()) {
    return run_targets(flags,
                       options,
                       config.session_max_inflight + 4,
                       std::get<core::stress::RssTolerance>(tolerance));
  }
  core::stress::Report report;
  report.target = target;
  report.seed = options.seed;
  report.rss_tolerance = std::get<core::stress::RssTolerance>(tolerance);
  const std::string why = load_target(flags,
                                      options,
                                      config.session_max_inflight + 4,
                                      !flags.json && ::isatty(STDERR_FILENO) == 1,
                                      report);
  if (!why.empty()) {
    return unreachable(flags, target, why);
  }
  std::cout << (flags.json ? report.to_json().dump(2) + "\n" : report.to_text());
  std::cout.flush();
  log->info("stress finished passed={} calls={} violations={} leaks={}",
            report.passed(),
            report.tally.calls(),
            report.violations.total(),
            report.leaks.size());
  return report.passed() ? kExitOk : kExitFailure;
}

} // namespace

Command
add_stress(CLI::App& root)
{
  auto flags = std::make_shared<StressFlags>();
  CLI::App* cli = root.add_subcommand("stress", "Load and leak check against a running daemon");
  cli->add_option(
      "--url", flags->url, "Daemon URL ws://host:port/path (default: from --host/--port)");
  cli->add_option("--targets",
                  flags->targets,
                  "Several daemons at once, ws://host:port,ws://host:port: connections, calls "
                  "and concurrency are split evenly; each daemon's baseline is checked");
  cli->add_option("--host", flags->host, "Daemon host (default: EXAI_WS_HOST, 127.0.0.1)");
  cli->add_option("--port", flags->port, "Daemon port (default: EXAI_WS_PORT, 8079)")
      ->check(CLI::Range(1, 65535));
  cli->add_option("--connections", flags->connections, "WebSocket connections to open")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{1000000}));
  cli->add_option_function<std::size_t>(
         "--calls",
         [flags](std::size_t n) {
           flags->calls = n;
           flags->calls_given = true;
         },
         "Scenarios to run (default 1000; with --duration alone: no limit)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1000000000}));
  cli->add_option("--duration", flags->duration_s, "Seconds to keep starting scenarios")
      ->check(CLI::Range(0.001, 1e7));
  cli->add_option("--concurrency",
                  flags->concurrency,
                  "Scenarios in flight at once (default: --connections)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{10000000}));
  cli->add_option("--tool", flags->tool, "Tool of the normal and duplicate calls")
      ->capture_default_str();
  cli->add_option("--model", flags->model, "Model of the chat calls (default: the daemon's)");
  cli->add_option("--mix",
                  flags->mix,
                  "Class weights, e.g. normal=80,timeout=2,cancel=5,disconnect=3,duplicate=3,"
                  "identical=3,burst=2,malformed=1,oversize=1");
  cli->add_option("--seed", flags->seed, "Seed of the scenario sequence")->capture_default_str();
  cli->add_flag("--json", flags->json, "Print the report as JSON (and no progress line)");
  cli->add_option("--rss-tolerance",
                  flags->rss_tolerance,
                  "Allowed RSS growth: a percentage (25%) or a size (64MB, 512KB, 1GB)")
      ->capture_default_str();
  cli->add_option("--drain-timeout",
                  flags->drain_timeout_s,
                  "Seconds to wait for results and for the daemon to drain after the load")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 86400.0));
  cli->add_option(
         "--max-bytes",
         flags->max_bytes,
         "The daemon's largest frame (default: EXAI_WS_MAX_BYTES); oversize sends one more")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 30U));
  cli->add_option("--threads", flags->threads, "Load threads (default: min(4, CPUs))")
      ->check(CLI::Range(std::size_t{1}, std::size_t{256}));
  cli->add_option("--hold", flags->hold_s, "Seconds to hold the connections idle before the load")
      ->check(CLI::Range(0.0, 86400.0));
  cli->add_flag("--hostile",
                flags->hostile,
                "Also run hostile clients (half frames, slow readers, pre-hello idlers, deep "
                "JSON, oversize frames, header tricklers) and report the good clients' latency");
  return {cli, [flags](const GlobalOptions& global) { return run_stress(*flags, global); }};
}

} // namespace exai::cmd
