// The pure side of exai stress: mix parsing, percentiles, tallies, the
// health baseline check and the report.

#include "core/stress/stress_report.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <variant>

namespace {

using namespace exai::core::stress;
using nlohmann::json;

json
healthy(std::int64_t sessions = 1, std::int64_t rss = 10 * 1024 * 1024)
{
  const json idle = {{"capacity", 4}, {"in_use", 0}, {"waiting", 0}};
  return {{"state", "serving"},
          {"sessions", sessions},
          {"connections", sessions},
          {"inflight_calls", 0},
          {"executions", 0},
          {"queued", 0},
          {"rss_bytes", rss},
          {"capacity",
           {{"global", idle},
            {"providers", {{"kimi", idle}, {"glm", idle}}},
            {"sessions", {{"capacity", 8}, {"in_use", 0}, {"waiting", 0}, {"limiters", 1}}},
            {"conversations", {{"capacity", 1}, {"in_use", 0}, {"waiting", 0}, {"limiters", 0}}}}}};
}

HealthSnapshot
snapshot(const json& health)
{
  auto parsed = parse_health(health);
  REQUIRE(std::holds_alternative<HealthSnapshot>(parsed));
  return std::get<HealthSnapshot>(parsed);
}

} // namespace

TEST_CASE("a mix parses class=weight items and rejects bad ones", "[core][stress]")
{
  const auto parsed = parse_mix("normal=80, timeout=2,cancel=5");
  REQUIRE(std::holds_alternative<Mix>(parsed));
  const Mix& mix = std::get<Mix>(parsed);
  CHECK(mix.weight(CallClass::normal) == 80);
  CHECK(mix.weight(CallClass::timeout) == 2);
  CHECK(mix.weight(CallClass::cancel) == 5);
  CHECK(mix.weight(CallClass::burst) == 0);
  CHECK(mix.total() == 87);
  CHECK(mix.to_string() == "normal=80,timeout=2,cancel=5");

  const auto bad = GENERATE(as<std::string>{},
                            "normal",
                            "normal=x",
                            "normal=-1",
                            "bogus=1",
                            "normal=1,normal=2",
                            "normal=0",
                            "");
  CAPTURE(bad);
  CHECK(std::holds_alternative<std::string>(parse_mix(bad)));
}

TEST_CASE("a mix picks each class in proportion to its weight", "[core][stress]")
{
  Mix mix;
  mix.set(CallClass::normal, 3);
  mix.set(CallClass::cancel, 1);
  CHECK(mix.pick(0) == CallClass::normal);
  CHECK(mix.pick(2) == CallClass::normal);
  CHECK(mix.pick(3) == CallClass::cancel);
  CHECK(mix.pick(4) == CallClass::normal);
  CHECK(mix.pick(7) == CallClass::cancel);
}

TEST_CASE("the default mix has timeouts only when asked", "[core][stress]")
{
  CHECK(default_mix(false).weight(CallClass::timeout) == 0);
  CHECK(default_mix(true).weight(CallClass::timeout) == 2);
  CHECK(default_mix(true).weight(CallClass::normal) == 80);
}

TEST_CASE("percentiles use the nearest rank", "[core][stress]")
{
  std::vector<double> sorted;
  for (int i = 1; i <= 100; ++i) {
    sorted.push_back(i);
  }
  CHECK(percentile(sorted, 50) == 50);
  CHECK(percentile(sorted, 95) == 95);
  CHECK(percentile(sorted, 99) == 99);
  CHECK(percentile(sorted, 100) == 100);
  CHECK(percentile({}, 50) == 0);
  CHECK(percentile({7}, 99) == 7);

  const auto s = summarize({5, 1, 3, 2, 4});
  CHECK(s.count == 5);
  CHECK(s.p50 == 3);
  CHECK(s.p99 == 5);
  CHECK(s.max == 5);
}

TEST_CASE("a tally counts outcomes per class and summarises latency per outcome", "[core][stress]")
{
  Tally a;
  a.add(CallClass::normal, "ok", 1);
  a.add(CallClass::normal, "ok", 3);
  Tally b;
  b.add(CallClass::cancel, "CANCELLED", 10);
  a.merge(b);
  CHECK(a.calls() == 3);
  CHECK(a.errors() == 1);
  CHECK(a.outcomes().at("ok") == 2);
  CHECK(a.by_class().at("cancel").at("CANCELLED") == 1);
  const auto latency = a.latency();
  CHECK(latency.at("ok").p50 == 1);
  CHECK(latency.at("ok").max == 3);
  CHECK(latency.at("all").count == 3);
  CHECK(latency.at("all").max == 10);
}

TEST_CASE("a violation log counts every violation but keeps a bounded list", "[core][stress]")
{
  ViolationLog log;
  for (std::size_t i = 0; i < ViolationLog::kKept + 10; ++i) {
    log.add("missing_result", "r" + std::to_string(i));
  }
  ViolationLog other;
  other.add("unknown_request_id", "x");
  log.merge(other);
  CHECK(log.total() == ViolationLog::kKept + 11);
  CHECK(log.kept().size() == ViolationLog::kKept);
  CHECK(log.counts().at("unknown_request_id") == 1);
}

TEST_CASE("health parses scopes, counts and rss", "[core][stress]")
{
  const auto s = snapshot(healthy(3));
  CHECK(s.sessions == 3);
  CHECK(s.inflight_calls == 0);
  CHECK(s.rss_bytes == 10 * 1024 * 1024);
  CHECK(s.session_capacity == 8);
  CHECK(s.scopes.size() == 5);

  auto broken = healthy();
  broken.erase("capacity");
  CHECK(std::holds_alternative<std::string>(parse_health(broken)));
  broken = healthy();
  broken["capacity"]["global"].erase("in_use");
  CHECK(std::holds_alternative<std::string>(parse_health(broken)));
  CHECK(std::holds_alternative<std::string>(parse_health(json::array())));
}

TEST_CASE("the baseline check passes an idle daemon and names each leak", "[core][stress]")
{
  RssTolerance tolerance; // 64 MB
  const auto before = snapshot(healthy(1));
  CHECK(baseline_problems(before, snapshot(healthy(1)), tolerance).empty());

  SECTION("a scope still in use")
  {
    auto after = healthy(1);
    after["capacity"]["providers"]["glm"]["in_use"] = 1;
    const auto problems = baseline_problems(before, snapshot(after), tolerance);
    REQUIRE(problems.size() == 1);
    CHECK(problems[0].kind == "capacity_leak");
    CHECK(problems[0].detail.find("provider glm in_use=1") != std::string::npos);
  }
  SECTION("waiting calls, in-flight calls and extra sessions")
  {
    auto after = healthy(2);
    after["capacity"]["global"]["waiting"] = 2;
    after["inflight_calls"] = 3;
    const auto problems = baseline_problems(before, snapshot(after), tolerance);
    REQUIRE(problems.size() == 3);
    CHECK(problems[0].detail.find("global waiting=2") != std::string::npos);
    CHECK(problems[1].kind == "inflight_leak");
    CHECK(problems[2].kind == "session_leak");
  }
  SECTION("RSS growth beyond the tolerance")
  {
    const auto grown = snapshot(healthy(1, 100 * 1024 * 1024));
    const auto problems = baseline_problems(before, grown, tolerance);
    REQUIRE(problems.size() == 1);
    CHECK(problems[0].kind == "rss_growth");
    RssTolerance generous;
    generous.percent = true;
    generous.value = 1000;
    CHECK(baseline_problems(before, grown, generous).empty());
  }
}

TEST_CASE("an RSS tolerance is a percentage or a size", "[core][stress]")
{
  const auto pct = parse_rss_tolerance("25%");
  REQUIRE(std::holds_alternative<RssTolerance>(pct));
  CHECK(std::get<RssTolerance>(pct).percent);
  CHECK(std::get<RssTolerance>(pct).allowance(1000) == 250);

  const auto mb = parse_rss_tolerance("64MB");
  REQUIRE(std::holds_alternative<RssTolerance>(mb));
  CHECK(std::get<RssTolerance>(mb).allowance(0) == 64 * 1024 * 1024);
  CHECK(std::get<RssTolerance>(parse_rss_tolerance("512kb")).allowance(0) == 512 * 1024);
  CHECK(std::get<RssTolerance>(parse_rss_tolerance("1G")).allowance(0) == 1024LL * 1024 * 1024);
  CHECK(std::get<RssTolerance>(parse_rss_tolerance("8")).allowance(0) == 8 * 1024 * 1024);

  for (const char* bad : {"", "%", "-5%", "lots", "5 parsecs"}) {
    CAPTURE(bad);
    CHECK(std::holds_alternative<std::string>(parse_rss_tolerance(bad)));
  }
}

TEST_CASE("the report passes only with no violation, no leak and a checked baseline",
          "[core][stress]")
{
  Report report;
  report.target = "ws://127.0.0.1:1/";
  report.elapsed_s = 2;
  report.tally.add(CallClass::normal, "ok", 1.5);
  report.tally.add(CallClass::normal, "ok", 2.5);
  CHECK_FALSE(report.passed()); // baseline not checked
  report.baseline_checked = true;
  report.before = snapshot(healthy());
  report.after = snapshot(healthy());
  CHECK(report.passed());
  CHECK(report.calls_per_second() == 1);
  const json j = report.to_json();
  CHECK(j.at("passed") == true);
  CHECK(j.at("calls") == 2);
  CHECK(j.at("latency_ms").at("ok").at("max") == 2.5);
  CHECK(report.to_text().find("result: PASS") != std::string::npos);

  report.violations.add("missing_result", "request_id r1 (normal) got no call_tool_res");
  CHECK_FALSE(report.passed());
  const std::string text = report.to_text();
  CHECK(text.find("VIOLATION missing_result: request_id r1") != std::string::npos);
  CHECK(text.find("result: FAIL") != std::string::npos);
  CHECK(report.to_json().at("violations").at("by_kind").at("missing_result") == 1);
}
