// Health end to end: the health file, GET /health, GET /metrics and the
// `exai health` command against the real daemon (SPEC §5).

#include "tests/support/daemon_checks.hpp"
#include "tests/support/exai_run.hpp"
#include "tests/support/fake_daemon.hpp"
#include "tests/support/fake_upstream.hpp"
#include "tests/support/serve_process.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/text_file.hpp"
#include "tests/support/ws_client.hpp"

#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

namespace {

using namespace exai::test;
using nlohmann::json;
using namespace std::chrono_literals;

HttpAnswer
http_get(std::uint16_t port, const std::string& path, const std::string& token = {})
{
  return http_request(port, "GET", path, token);
}

// Runs `exai health ARGS` with `env`; returns exit code and stdout.
std::pair<int, std::string>
run_health(const std::vector<std::string>& args, const std::map<std::string, std::string>& env)
{
  std::vector<std::string> environment{"PATH=/usr/bin:/bin"};
  for (const auto& [k, v] : env) {
    environment.push_back(k + "=" + v);
  }
  std::string words = "health";
  for (const auto& a : args) {
    words += " " + a;
  }
  const auto run = exai::test::run_exai(EXAI_BINARY, environment, words);
  return {run.exit_code, run.out};
}

std::string
state_dir_of(const ServeProcess& serve)
{
  // ServeProcess gives each daemon a private state dir; it is named in the
  // pid file path the daemon holds: find it through /proc.
  for (const auto& entry :
       std::filesystem::directory_iterator("/proc/" + std::to_string(serve.pid()) + "/fd")) {
    std::error_code ec;
    const auto target = std::filesystem::read_symlink(entry.path(), ec).string();
    if (!ec && target.ends_with("/ws_daemon.pid")) {
      return std::filesystem::path(target).parent_path().string();
    }
  }
  return {};
}

json
read_json_file(const std::string& path)
{
  return json::parse(read_text(path), nullptr, false);
}

} // namespace

TEST_CASE("GET /health answers 200 when healthy and 503 when a provider is exhausted",
          "[e2e][health]")
{
  FakeUpstream fake;
  auto serve = serve_glm(fake, "glm-key-0123456789", {{"EXAI_WS_GLM_MAX_INFLIGHT", "1"}});
  const auto ok = http_get(serve->port(), "/health");
  CHECK(ok.status == 200);
  const json doc = json::parse(ok.body);
  CHECK(doc["state"] == "serving");
  CHECK(doc["healthy"] == true);
  CHECK(run_health({}, {{"EXAI_WS_PORT", std::to_string(serve->port())}}).first == 0);

  WsClient client(serve->port());
  REQUIRE(client.hello());
  REQUIRE(start_call(client, "busy", "chat", {{"prompt", "hold [[hang]]"}}));
  const auto degraded = http_get(serve->port(), "/health");
  CHECK(degraded.status == 503);
  CHECK(json::parse(degraded.body)["degraded_reasons"][0] == "provider glm capacity exhausted");
  const auto [code, out] =
      run_health({"--json"}, {{"EXAI_WS_PORT", std::to_string(serve->port())}});
  CHECK(code == 1);
  CHECK(json::parse(out)["status"] == "degraded");

  client.send_json({{"op", "cancel_tool"}, {"request_id", "busy"}});
  REQUIRE(client.recv_until([](const json& f) { return f.value("op", "") == "call_tool_res"; },
                            deadline_in(5s)));
  fake.release_hangs();
  const auto deadline = deadline_in(5s);
  int status = 0;
  while ((status = http_get(serve->port(), "/health").status) != 200 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  CHECK(status == 200);
}

TEST_CASE("health stays fast while every call thread waits on a slow provider", "[e2e][health]")
{
  FakeUpstream fake;
  auto serve = serve_glm(
      fake, "glm-key-0123456789", {{"EXAI_WS_GLM_MAX_INFLIGHT", "4"}, {"EXAI_CALL_THREADS", "4"}});
  WsClient client(serve->port());
  REQUIRE(client.hello());
  for (int i = 0; i < 8; ++i) {
    client.send_json({{"op", "call_tool"},
                      {"request_id", "slow" + std::to_string(i)},
                      {"name", "chat"},
                      {"arguments", {{"prompt", "slow " + std::to_string(i) + " [[hang]]"}}}});
  }
  const auto deadline = deadline_in(10s);
  while (fake.current_concurrency() < 4 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  REQUIRE(fake.current_concurrency() == 4);
  for (int i = 0; i < 5; ++i) {
    const auto reply = http_get(serve->port(), "/health");
    CHECK(reply.status == 503); // provider exhausted, but answered
    CHECK(reply.took < 500ms);
    const auto metrics = http_get(serve->port(), "/metrics");
    CHECK(metrics.status == 200);
    CHECK(metrics.took < 500ms);
  }
  fake.release_hangs();
}

TEST_CASE("the health file is valid at every moment and returns to zero after calls",
          "[e2e][health]")
{
  FakeUpstream fake;
  auto serve = serve_glm(fake, "glm-key-0123456789", {{"EXAI_HEALTH_WRITER_INTERVAL", "0.05"}});
  const std::string dir = state_dir_of(*serve);
  REQUIRE_FALSE(dir.empty());
  const std::string path = dir + "/ws_daemon.health.json";
  std::atomic<bool> stop{false};
  std::atomic<int> invalid{0};
  std::atomic<int> reads{0};
  std::atomic<int> max_inflight{0};
  std::jthread reader([&] {
    while (!stop) {
      const json doc = read_json_file(path);
      if (doc.is_discarded()) {
        ++invalid;
        continue;
      }
      ++reads;
      max_inflight = std::max(max_inflight.load(), doc["global_inflight"].get<int>());
    }
  });
  WsClient client(serve->port());
  REQUIRE(client.hello());
  for (int i = 0; i < 6; ++i) {
    client.send_json(
        {{"op", "call_tool"},
         {"request_id", "f" + std::to_string(i)},
         {"name", "chat"},
         {"arguments", {{"prompt", "file " + std::to_string(i) + " [[sleep_ms=150]]"}}}});
  }
  std::set<std::string> finished;
  while (finished.size() < 6) {
    const auto res = client.recv_until(
        [](const json& f) { return f.value("op", "") == "call_tool_res"; }, deadline_in(10s));
    if (!res) {
      stop = true;
      FAIL("missing results: " << finished.size() << " of 6");
    }
    finished.insert(res->at("request_id").get<std::string>());
  }
  const auto deadline = deadline_in(5s);
  json last;
  do {
    last = read_json_file(path);
  } while ((last.is_discarded() || last["global_inflight"] != 0 || last["counters"]["ok"] != 6) &&
           std::chrono::steady_clock::now() < deadline);
  stop = true;
  reader.join();
  CHECK(invalid == 0);
  CHECK(reads > 10);
  CHECK(max_inflight > 0); // it moved while calls ran
  CHECK(last["global_inflight"] == 0);
  CHECK(last["counters"]["ok"] == 6);
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);

  CHECK(run_health({"--file", path}, {}).first == 0);
  CHECK(serve->stop(SIGTERM) == 0);
  CHECK_FALSE(std::filesystem::exists(path)); // removed on a clean stop
  CHECK(run_health({"--file", path}, {}).first == 2);
}

TEST_CASE("a second daemon on the same state dir is refused with 69", "[e2e][health]")
{
  TempDir dir;
  auto first = ServeProcess::start_ready({{"EXAI_STATE_DIR", dir.path()}});
  ServeProcess second({{"EXAI_STATE_DIR", dir.path()}});
  CHECK(second.wait_exit() == 69);
  CHECK_THAT(second.stderr_text(), Catch::Contains("already uses state dir"));
}

TEST_CASE("exai health reports stale files and absent daemons", "[e2e][health]")
{
  TempDir dir;
  const std::string path = dir.path() + "/ws_daemon.health.json";
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  const auto write = [&](double t, long pid, bool healthy) {
    std::ofstream(path)
        << json{{"t", t}, {"pid", pid}, {"healthy", healthy}, {"state", "serving"}}.dump();
  };
  write(now, ::getpid(), true);
  CHECK(run_health({"--file", path}, {}).first == 0);
  write(now, ::getpid(), false);
  CHECK(run_health({"--file", path}, {}).first == 1);
  write(now - 600, ::getpid(), true); // stale, but the process lives: hung
  const auto [hung, hung_out] = run_health({"--file", path, "--max-age", "30"}, {});
  CHECK(hung == 1);
  CHECK_THAT(hung_out, Catch::Contains("s old"));
  write(now - 600, 999999999, true); // stale and the process is gone
  CHECK(run_health({"--file", path, "--max-age", "30"}, {}).first == 2);
  // --file without a path reads the default state dir.
  write(now, ::getpid(), true);
  CHECK(run_health({"--file"}, {{"EXAI_STATE_DIR", dir.path()}}).first == 0);
  // Nothing listens on this port.
  const auto [code, out] = run_health({"--url", "http://127.0.0.1:1"}, {});
  CHECK(code == 2);
  CHECK_THAT(out, Catch::Contains("unreachable"));
}

TEST_CASE("GET /metrics exposes per-scope gauges and a latency histogram", "[e2e][health]")
{
  auto serve = ServeProcess::start_ready();
  WsClient client(serve->port());
  REQUIRE(client.hello());
  client.send_json({{"op", "call_tool"}, {"request_id", "m1"}, {"name", "version"}});
  REQUIRE(client.recv_until([](const json& f) { return f.value("op", "") == "call_tool_res"; },
                            deadline_in(5s)));
  const auto reply = http_get(serve->port(), "/metrics");
  CHECK(reply.status == 200);
  CHECK_THAT(reply.body, Catch::Contains("# TYPE exai_call_duration_seconds histogram"));
  CHECK_THAT(reply.body, Catch::Contains("exai_call_duration_seconds_count 1\n"));
  CHECK_THAT(reply.body, Catch::Contains("exai_inflight{scope=\"global\"} 0\n"));
  CHECK_THAT(reply.body, Catch::Contains("exai_connections 1\n"));
}

TEST_CASE("with a token, /health and /metrics need the bearer", "[e2e][health]")
{
  const std::string token = "health-token-0123456789";
  auto serve = ServeProcess::start_ready({{"EXAI_WS_TOKEN", token}});
  CHECK(http_get(serve->port(), "/health").status == 401);
  CHECK(http_get(serve->port(), "/metrics").status == 401);
  CHECK(http_get(serve->port(), "/health", token).status == 200);
  CHECK(run_health({}, {{"EXAI_WS_PORT", std::to_string(serve->port())}, {"EXAI_WS_TOKEN", token}})
            .first == 0);
}
