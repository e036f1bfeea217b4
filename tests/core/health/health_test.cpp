#include "core/error.hpp"
#include "core/health/health.hpp"
#include "core/health/metrics.hpp"
#include "core/health/state_dir.hpp"
#include "tests/support/temp_dir.hpp"

#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <thread>

using namespace exai::core;
using nlohmann::json;

namespace {

HealthInputs
sample_inputs()
{
  HealthInputs in;
  in.state = DaemonState::serving;
  in.pid = 42;
  in.host = "127.0.0.1";
  in.port = 8079;
  in.started_at = std::chrono::system_clock::time_point(std::chrono::seconds(1000));
  in.now = in.started_at + std::chrono::seconds(3725);
  in.tool_count = 5;
  in.engine.capacity.global = {24, 3, 0};
  in.engine.capacity.providers = {{"glm", {4, 1, 0}}, {"kimi", {6, 2, 0}}};
  in.engine.capacity.sessions = {16, 3, 0};
  in.engine.capacity.session_limiters = 2;
  in.engine.circuits = {{"glm", "closed"}, {"kimi", "closed"}};
  in.engine.counters.ok = 7;
  in.engine.counters.rejected = {{"provider", 2}};
  in.server = {3, 2};
  in.rss_bytes = 12345;
  return in;
}

using exai::test::TempDir;

} // namespace

TEST_CASE("health carries the Python daemon's fields and the per-scope numbers", "[core][health]")
{
  const json h = health_json(sample_inputs());
  for (const char* field : {"global_capacity",
                            "global_inflight",
                            "host",
                            "pid",
                            "port",
                            "sessions",
                            "started_at",
                            "t",
                            "tool_count",
                            "uptime_human",
                            "state",
                            "connections",
                            "capacity",
                            "inflight_calls",
                            "cached_results",
                            "circuits",
                            "counters"}) {
    CAPTURE(field);
    CHECK(h.contains(field));
  }
  CHECK(h["state"] == "serving");
  CHECK(h["healthy"] == true);
  CHECK(h["global_capacity"] == 24);
  CHECK(h["global_inflight"] == 3);
  CHECK(h["uptime_human"] == "1h 2m 5s");
  CHECK(h["capacity"]["providers"]["kimi"]["in_use"] == 2);
  CHECK(h["capacity"]["sessions"]["limiters"] == 2);
  CHECK(h["counters"]["rejected"]["provider"] == 2);
  CHECK(h["counters"]["rejected"]["global"] == 0);
  CHECK(h["connections"] == 3);
}

TEST_CASE("health is degraded when a scope is exhausted, a circuit is open or not serving",
          "[core][health]")
{
  SECTION("global exhausted")
  {
    auto in = sample_inputs();
    in.engine.capacity.global.in_use = 24;
    const json h = health_json(in);
    CHECK(h["healthy"] == false);
    CHECK(h["degraded_reasons"][0] == "global capacity exhausted");
  }
  SECTION("provider exhausted")
  {
    auto in = sample_inputs();
    in.engine.capacity.providers["glm"].in_use = 4;
    CHECK(health_json(in)["degraded_reasons"][0] == "provider glm capacity exhausted");
  }
  SECTION("circuit open")
  {
    auto in = sample_inputs();
    in.engine.circuits["kimi"] = "open";
    CHECK(health_json(in)["degraded_reasons"][0] == "provider kimi circuit open");
  }
  SECTION("stopping")
  {
    auto in = sample_inputs();
    in.state = DaemonState::stopping;
    CHECK(health_json(in)["healthy"] == false);
  }
}

TEST_CASE("uptime reads like a person would write it", "[core][health]")
{
  CHECK(uptime_human(std::chrono::seconds(0)) == "0s");
  CHECK(uptime_human(std::chrono::seconds(59)) == "59s");
  CHECK(uptime_human(std::chrono::seconds(3600)) == "1h 0m 0s");
  CHECK(uptime_human(std::chrono::seconds(90061)) == "1d 1h 1m 1s");
}

TEST_CASE("this process's RSS is readable", "[core][health]")
{
  CHECK(process_rss_bytes() > 0);
}

TEST_CASE("metrics follow the Prometheus text format rules", "[core][metrics]")
{
  auto in = sample_inputs();
  Histogram latency;
  latency.observe(0.002);
  latency.observe(0.3);
  latency.observe(1000);
  in.engine.call_latency = latency.snapshot();
  in.engine.upstream_latency["kimi"] = latency.snapshot();
  const std::string text = render_prometheus(in);

  std::map<std::string, std::string> types;
  std::istringstream lines(text);
  std::string line;
  const std::regex sample_re(R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$)");
  std::string last_bucket_family;
  double last_bucket = -1;
  while (std::getline(lines, line)) {
    CAPTURE(line);
    if (line.rfind("# HELP ", 0) == 0) {
      continue;
    }
    if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream parts(line.substr(7));
      std::string name;
      std::string type;
      parts >> name >> type;
      CHECK(types.count(name) == 0); // one TYPE per family
      types[name] = type;
      continue;
    }
    std::smatch m;
    REQUIRE(std::regex_match(line, m, sample_re));
    std::string family = m[1];
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      const std::string s(suffix);
      if (family.size() > s.size() && family.substr(family.size() - s.size()) == s &&
          types.count(family.substr(0, family.size() - s.size())) != 0) {
        family = family.substr(0, family.size() - s.size());
      }
    }
    CHECK(types.count(family) == 1); // TYPE precedes samples
    const double value = std::stod(m[3]);
    if (std::string(m[1]).find("_bucket") != std::string::npos) {
      const std::string key =
          family + std::regex_replace(std::string(m[2]), std::regex(R"(,?le="[^"]*")"), "");
      if (key != last_bucket_family) {
        last_bucket_family = key;
        last_bucket = -1;
      }
      CHECK(value >= last_bucket); // cumulative
      last_bucket = value;
    }
  }
  CHECK(types["exai_call_duration_seconds"] == "histogram");
  CHECK(types["exai_rejections_total"] == "counter");
  CHECK(text.find("exai_call_duration_seconds_bucket{le=\"+Inf\"} 3\n") != std::string::npos);
  CHECK(text.find("exai_call_duration_seconds_count 3\n") != std::string::npos);
  CHECK(text.find("exai_upstream_duration_seconds_bucket{provider=\"kimi\",le=\"+Inf\"} 3") !=
        std::string::npos);
  CHECK(text.find("exai_inflight{scope=\"provider\",provider=\"kimi\"} 2\n") != std::string::npos);
  CHECK(text.find("exai_rejections_total{scope=\"provider\"} 2\n") != std::string::npos);
  CHECK(text.find("exai_circuit_open{provider=\"kimi\"} 0\n") != std::string::npos);
  CHECK(text.find("process_resident_memory_bytes 12345\n") != std::string::npos);
}

TEST_CASE("label values are escaped", "[core][metrics]")
{
  CHECK(escape_label_value("a\"b\\c\nd") == "a\\\"b\\\\c\\nd");
}

TEST_CASE("the health file is replaced atomically with mode 0600", "[core][state_dir]")
{
  TempDir dir;
  const std::string path = dir.path() + "/ws_daemon.health.json";
  std::atomic<bool> stop{false};
  std::atomic<int> bad_reads{0};
  std::atomic<int> reads{0};
  std::thread reader([&] {
    while (!stop) {
      std::ifstream in(path);
      if (!in) {
        continue;
      }
      std::stringstream content;
      content << in.rdbuf();
      if (json::parse(content.str(), nullptr, false).is_discarded()) {
        ++bad_reads;
      }
      ++reads;
    }
  });
  for (int i = 0; i < 300; ++i) {
    json doc = {{"i", i}, {"pad", std::string(static_cast<std::size_t>(20000 + i), 'x')}};
    write_file_atomically(path, doc.dump());
  }
  stop = true;
  reader.join();
  CHECK(bad_reads == 0);
  CHECK(reads > 0);
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  CHECK(std::distance(std::filesystem::directory_iterator(dir.path()),
                      std::filesystem::directory_iterator()) == 1); // no temp files left
}

TEST_CASE("the health writer writes at once, on request and removes the file at the end",
          "[core][state_dir]")
{
  TempDir dir;
  const std::string path = dir.path() + "/h.json";
  std::atomic<int> renders{0};
  {
    HealthFileWriter writer(
        path,
        [&] {
          return json{{"n", ++renders}}.dump();
        },
        std::chrono::hours(1));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!std::filesystem::exists(path) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::yield();
    }
    REQUIRE(std::filesystem::exists(path));
    writer.write_now();
    std::ifstream in(path);
    CHECK(json::parse(in)["n"].get<int>() >= 2);
  }
  CHECK_FALSE(std::filesystem::exists(path));
}

TEST_CASE("a pid file keeps a second daemon out and is removed at the end", "[core][state_dir]")
{
  TempDir dir;
  const std::string state = dir.path() + "/nested/state";
  {
    PidFile first(state);
    std::ifstream in(first.path());
    long pid = 0;
    in >> pid;
    CHECK(pid == ::getpid());
    try {
      PidFile second(state);
      FAIL("second claim succeeded");
    } catch (const Error& e) {
      CHECK(e.code() == Errc::already_running);
      CHECK_THAT(e.what(), Catch::Contains(std::to_string(::getpid())));
    }
  }
  CHECK_FALSE(std::filesystem::exists(state + "/ws_daemon.pid"));
}

TEST_CASE("a stale pid file from a dead daemon is taken over", "[core][state_dir]")
{
  TempDir dir;
  std::ofstream(dir.path() + "/ws_daemon.pid") << "999999999\n";
  PidFile claim(dir.path());
  std::ifstream in(claim.path());
  long pid = 0;
  in >> pid;
  CHECK(pid == ::getpid());
}

TEST_CASE("health and metrics carry each provider's upstream connection pool",
          "[core][health][metrics]")
{
  auto in = sample_inputs();
  exai::core::UpstreamPoolStats pool;
  pool.idle = 2;
  pool.leased = 1;
  pool.max_idle = 6;
  pool.reused = 40;
  pool.opened = 3;
  pool.stale_retries = 1;
  in.engine.pools = {{"kimi", pool}};
  const json h = health_json(in);
  CHECK(h["upstream_pools"]["kimi"] == json{{"idle", 2},
                                            {"leased", 1},
                                            {"max_idle", 6},
                                            {"reused", 40},
                                            {"opened", 3},
                                            {"stale_retries", 1}});
  const std::string text = render_prometheus(in);
  CHECK(text.find("exai_upstream_pool_connections{provider=\"kimi\",state=\"idle\"} 2\n") !=
        std::string::npos);
  CHECK(text.find("exai_upstream_pool_connections{provider=\"kimi\",state=\"leased\"} 1\n") !=
        std::string::npos);
  CHECK(text.find("# TYPE exai_upstream_connections_reused_total counter\n"
                  "exai_upstream_connections_reused_total{provider=\"kimi\"} 40\n") !=
        std::string::npos);
  CHECK(text.find("exai_upstream_connections_opened_total{provider=\"kimi\"} 3\n") !=
        std::string::npos);
  CHECK(text.find("exai_upstream_stale_retries_total{provider=\"kimi\"} 1\n") != std::string::npos);
}
