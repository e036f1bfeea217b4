// exai stress end to end: a short mixed run against a real `exai serve` and
// the fake upstream passes; against a broken daemon it exits 1 naming the
// problem; with no daemon it exits 2.

#include "tests/support/broken_daemon.hpp"
#include "tests/support/exai_run.hpp"
#include "tests/support/fake_daemon.hpp"
#include "tests/support/fake_upstream.hpp"
#include "tests/support/sanitized.hpp"
#include "tests/support/serve_process.hpp"

#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace {

using namespace exai::test;
using nlohmann::json;

const std::string kStressToken = "stress-e2e-token-0123456789";

using Run = exai::test::ExaiRun;

Run
run_stress(const std::vector<std::string>& environment, const std::string& args)
{
  return exai::test::run_exai(EXAI_BINARY, environment, "--log-level warn stress " + args);
}

json
report_of(const Run& run)
{
  CAPTURE(run.out, run.err);
  const json report = json::parse(run.out, nullptr, false);
  REQUIRE_FALSE(report.is_discarded());
  return report;
}

// The report of a run that exited with `exit_code`.
json
report_exiting(const Run& run, int exit_code)
{
  const json report = report_of(run);
  CAPTURE(report.dump(2));
  CHECK(run.exit_code == exit_code);
  return report;
}

// A broken daemon's port, short load, JSON report. The short timeouts tell
// stress how soon a missing result is overdue.
Run
stress_broken(const BrokenDaemon& daemon, const std::string& drain = "1")
{
  return run_stress({"EXAI_WS_CALL_TIMEOUT_SECS=0.5", "EXAI_WS_ACQUIRE_TIMEOUT_SECS=0"},
                    "--json --port " + std::to_string(daemon.port()) +
                        " --connections 2 --calls 12 --mix normal=1 --drain-timeout " + drain);
}

// `exai serve` with GLM on `fake` and `extra` settings; every other limit at
// its default.
std::unique_ptr<ServeProcess>
daemon_on(const FakeUpstream& fake, ServeProcess::Env extra = {})
{
  return serve_glm(fake, "test-key", std::move(extra));
}

} // namespace

TEST_CASE("a short mixed stress run against exai serve passes", "[e2e][stress]")
{
  FakeUpstream fake;
  const std::vector<std::string> shared = {
      "EXAI_WS_TOKEN=" + kStressToken,
      "EXAI_WS_CALL_TIMEOUT_SECS=1",
      "EXAI_WS_MAX_BYTES=65536",
  };
  // Sessions stay resumable for SESSION_TIMEOUT_SECS after their connection
  // closed (and close idle connections after it): short enough for the
  // baseline check to see them go, longer than any idle time in this run.
  ServeProcess::Env env = {{"SESSION_TIMEOUT_SECS", "3"}};
  for (const auto& entry : shared) {
    const auto eq = entry.find('=');
    env[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  const auto serve = daemon_on(fake, env);

  // Every class once or more: timeouts (1 s call timeout), cancels,
  // disconnects, duplicates, identical calls, a burst, bad frames.
  const Run run = run_stress(shared,
                             "--json --port " + std::to_string(serve->port()) +
                                 " --connections 4 --calls 40 --seed 7 --drain-timeout 10"
                                 " --mix normal=10,timeout=1,cancel=2,disconnect=2,duplicate=2,"
                                 "identical=2,burst=1,malformed=1,oversize=1");
  CAPTURE(run.err, serve->stderr_text());
  const json report = report_of(run);
  CAPTURE(report.dump(2));
  CHECK(run.exit_code == 0);
  CHECK(report.at("passed") == true);
  CHECK(report.at("calls").get<int>() >= 40);
  CHECK(report.at("violations").at("total") == 0);
  CHECK(report.at("baseline").at("passed") == true);
  CHECK(report.at("outcomes").contains("ok"));
}

TEST_CASE("exai stress exits 1 naming a call_tool_res the daemon dropped", "[e2e][stress]")
{
  BrokenDaemon daemon(BrokenDaemon::Fault::drop_result);
  const json report = report_exiting(stress_broken(daemon), 1);
  CHECK(report.at("passed") == false);
  CHECK(report.at("violations").at("by_kind").at("missing_result") == 1);
  CHECK(report.at("baseline").at("passed") == true);
}

TEST_CASE("exai stress exits 1 naming a scope left in use after the run", "[e2e][stress]")
{
  BrokenDaemon daemon(BrokenDaemon::Fault::leak_in_use);
  const json report = report_exiting(stress_broken(daemon, "0.3"), 1);
  CHECK(report.at("violations").at("total") == 0);
  const json& problems = report.at("baseline").at("problems");
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].at("kind") == "capacity_leak");
  CHECK(problems[0].at("detail") == "scope global in_use=1 after the run");

  // The text report names it too.
  const Run text = run_stress({},
                              "--port " + std::to_string(daemon.port()) +
                                  " --connections 1 --calls 2 --mix normal=1 --drain-timeout 0.3");
  CHECK(text.exit_code == 1);
  CHECK(text.out.find("LEAK capacity_leak: scope global in_use=1 after the run") !=
        std::string::npos);
  CHECK(text.out.find("result: FAIL") != std::string::npos);
}

TEST_CASE("exai stress exits 1 naming a reply without request_id", "[e2e][stress]")
{
  BrokenDaemon daemon(BrokenDaemon::Fault::missing_request_id);
  const json report = report_exiting(stress_broken(daemon), 1);
  CHECK(report.at("violations").at("by_kind").at("missing_request_id") == 1);
}

TEST_CASE("exai stress passes a correct daemon and exits 2 when none listens", "[e2e][stress]")
{
  {
    BrokenDaemon daemon(BrokenDaemon::Fault::none);
    const json report = report_exiting(stress_broken(daemon), 0);
    CHECK(report.at("calls") == 12);
  }
  std::uint16_t free_port = 0;
  {
    Poco::Net::ServerSocket socket(Poco::Net::SocketAddress("127.0.0.1", 0));
    free_port = socket.address().port();
  }
  const Run run = run_stress({}, "--json --port " + std::to_string(free_port) + " --calls 1");
  CAPTURE(run.out, run.err);
  CHECK(run.exit_code == 2);
  CHECK(report_of(run).at("unreachable") == true);
}

namespace {

// A plain build answers in a few milliseconds. Under a sanitizer, with ctest
// running another test alongside on 2 cores, the bound only tells a loaded
// daemon from one a hostile client stalls (seconds).
constexpr double kGoodP99Ms = kSanitized ? 500 : 10;
// The sanitizers' allocators keep freed memory (ASan's quarantine): RSS says
// nothing about the daemon there, so only the plain builds check it.
const std::string kDefaultRss = kSanitized ? " --rss-tolerance 4GB" : "";
// A leak grows with the calls: the hostile run makes about 20,000 in a Debug
// build and 90,000 in an optimized one, so 16 MB catches a leak of a few
// hundred bytes per call. A share of the daemon's 15 MB (it was 20%) is less
// than what the load adds and keeps, however long it runs: call threads'
// stacks, allocator arenas, full caches (4-8 MB in an optimized build, the same
// after 4 s as after 12 s with three times the calls).
const std::string kTightRss = kSanitized ? " --rss-tolerance 4GB" : " --rss-tolerance 16MB";
// Calls the well-behaved clients must finish in the hostile run's 4 s: enough
// calls for the 16 MB RSS check to catch a leak in a plain build. A stalled
// daemon makes a handful. Under ThreadSanitizer, on a CI machine running the
// other tests alongside, the run made 611, so the sanitized floor is a third
// of that; the p99 bound is what checks speed there.
constexpr int kHostileMinCalls = kSanitized ? 200 : 1000;

// stress --json against `serve`, with `args` after the port.
Run
stress_json(const ServeProcess& serve, const std::string& args)
{
  return run_stress({}, "--json --port " + std::to_string(serve.port()) + " " + args);
}

// A run that kept every promise: exit 0, no connection refused, no
// violation, and the daemon back to its baseline afterwards.
void
check_clean(const Run& run)
{
  const json report = report_of(run);
  CAPTURE(report["baseline"].dump());
  CHECK(run.exit_code == 0);
  CHECK(report["refused"]["connections"] == 0);
  CHECK(report["violations"]["total"] == 0);
  CHECK(report["baseline"]["passed"] == true);
}

} // namespace

TEST_CASE("row 11: exai stress with its defaults and the README's example pass against a default "
          "exai serve",
          "[e2e][stress][hardening]")
{
  FakeUpstream fake;
  const auto serve = daemon_on(fake);
  SECTION("--calls 3000, everything else default")
  {
    check_clean(stress_json(*serve, "--calls 3000" + kDefaultRss));
  }
  SECTION("the README's example: 200 connections and a mix")
  {
    check_clean(stress_json(*serve,
                            "--connections 200 --calls 2000"
                            " --mix normal=80,cancel=5,disconnect=5,duplicate=5,identical=5" +
                                kDefaultRss));
  }
}

TEST_CASE("exai stress keeps its control connection alive through a run longer than the "
          "daemon's ping timeout",
          "[e2e][stress]")
{
  // The control connection reads the baseline before the load and again
  // after it, idle in between. The daemon pings a silent connection after
  // EXAI_WS_PING_INTERVAL and drops it when no pong comes within
  // EXAI_WS_PING_TIMEOUT: here after 2.5 s, well inside a 5 s run.
  FakeUpstream fake;
  const auto serve =
      daemon_on(fake, {{"EXAI_WS_PING_INTERVAL", "1.5"}, {"EXAI_WS_PING_TIMEOUT", "1"}});
  const Run run = stress_json(*serve, "--connections 2 --duration 5 --mix normal=1" + kDefaultRss);
  CAPTURE(run.err, serve->stderr_text());
  check_clean(run);
  CHECK(report_of(run)["baseline"]["checked"] == true);
}

TEST_CASE("exai stress reports connections the daemon refuses as refusals, not violations",
          "[e2e][stress]")
{
  FakeUpstream fake;
  const auto serve = daemon_on(fake, {{"MAX_CONNECTIONS", "3"}});
  // The control connection takes one place: 2 of 6 load connections fit.
  const json report = report_of(stress_json(*serve, "--connections 6 --calls 50 --mix normal=1"));
  CHECK(report["refused"]["connections"] == 4);
  CHECK_THAT(report["refused"]["reason"].get<std::string>(), Catch::Contains("MAX_CONNECTIONS"));
  CHECK(report["violations"]["by_kind"].count("connect_failed") == 0);
  CHECK(report["calls"] == 50);
}

TEST_CASE("exai stress --hostile: well-behaved clients stay fast and lose nothing",
          "[e2e][stress][hardening]")
{
  FakeUpstream fake;
  // Results stay replayable for 2 s instead of 10 minutes, so the memory of
  // the run's thousands of results is back before the baseline is read.
  const auto serve = daemon_on(fake, {{"EXAI_WS_RESULT_TTL", "2"}});
  const Run run =
      stress_json(*serve, "--hostile --connections 8 --duration 4 --mix normal=1" + kTightRss);
  const json report = report_of(run);
  CHECK(run.exit_code == 0);
  CHECK(report["violations"]["total"] == 0);
  CHECK(report["baseline"]["passed"] == true);
  CHECK(report["calls"].get<int>() > kHostileMinCalls);
  CHECK(report["outcomes"]["ok"] == report["calls"]);
  CHECK(report["latency_ms"]["ok"]["p99"].get<double>() < kGoodP99Ms);
  const json& hostile = report["hostile"];
  for (const char* kind :
       {"half_frame", "pre_hello", "slow_reader", "deep_json", "oversize", "trickler"}) {
    CAPTURE(kind);
    CHECK(hostile[kind]["opened"].get<int>() > 0);
  }
  CHECK(hostile["oversize"]["cut"].get<int>() > 0);       // 1009 at the header
  CHECK(hostile["deep_json"]["answered"].get<int>() > 0); // VALIDATION_ERROR, not a crash
}
