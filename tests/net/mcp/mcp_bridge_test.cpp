// McpBridge (`exai mcp`) against an in-process daemon (WsServer + a scripted
// call engine): forwarding, progress, cancellation, an unreachable daemon, a
// daemon that appears late, a daemon restart, and end of input.

#include "net/mcp/mcp_bridge.hpp"
#include "net/server/ws_server.hpp"
#include "tests/net/scripted_call_engine.hpp"
#include "tests/support/temp_dir.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using exai::test::ScriptedCallEngine;
using nlohmann::json;
using namespace std::chrono_literals;

// A daemon on 127.0.0.1:`port` (0 = ephemeral).
struct Daemon {
  explicit Daemon(std::uint16_t port = 0, std::string token = {})
  {
    config.port = port;
    config.token = std::move(token);
    server = std::make_unique<exai::net::WsServer>(
        config, engine, [] { return json::object(); }, spdlog::default_logger());
    server->start();
  }
  ~Daemon() { server->stop(); }
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  std::uint16_t port() const { return server->port(); }

  exai::core::DaemonConfig config;
  ScriptedCallEngine engine;
  std::unique_ptr<exai::net::WsServer> server;
};

// What the bridge wrote, one parsed message per line.
class Output {
public:
  void write(const std::string& line)
  {
    {
      const std::lock_guard lock(mutex_);
      lines_.push_back(json::parse(line));
    }
    changed_.notify_all();
  }

  // The first message matching `match`, waiting up to `timeout`.
  std::optional<json> wait_for(const std::function<bool(const json&)>& match,
                               std::chrono::milliseconds timeout = 10s)
  {
    std::unique_lock lock(mutex_);
    std::optional<json> found;
    changed_.wait_for(lock, timeout, [&] {
      for (const auto& line : lines_) {
        if (match(line)) {
          found = line;
          return true;
        }
      }
      return false;
    });
    return found;
  }

  std::optional<json> response(const json& id, std::chrono::milliseconds timeout = 10s)
  {
    return wait_for(
        [&](const json& m) { return m.contains("id") && m["id"] == id && !m.contains("method"); },
        timeout);
  }

  // Whether the call `id` was answered with a result that is not an error.
  bool call_succeeded(const json& id)
  {
    const auto reply = response(id);
    UNSCOPED_INFO((reply ? reply->dump() : std::string("no answer")));
    return reply && (*reply)["result"]["isError"] == false;
  }

  std::vector<json> lines() const
  {
    const std::lock_guard lock(mutex_);
    return lines_;
  }

private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<json> lines_;
};

// Stops the daemon and starts a new one on the same port.
void
restart(std::unique_ptr<Daemon>& daemon)
{
  const auto port = daemon->port();
  daemon.reset();
  daemon = std::make_unique<Daemon>(port);
}

std::unique_ptr<exai::net::McpBridge>
make_bridge(std::uint16_t port, Output& out, exai::net::BridgeOptions options = {})
{
  exai::net::DaemonAddress endpoint;
  endpoint.port = port;
  return std::make_unique<exai::net::McpBridge>(
      endpoint,
      std::move(options),
      [&out](const std::string& line) { out.write(line); },
      spdlog::default_logger());
}

std::string
call(int id, const std::string& tool, const json& meta = nullptr)
{
  json params = {{"name", tool}, {"arguments", json::object()}};
  if (!meta.is_null()) {
    params["_meta"] = meta;
  }
  return json{{"jsonrpc", "2.0"}, {"id", id}, {"method", "tools/call"}, {"params", params}}.dump();
}

// A port that nothing listens on (just released by a stopped daemon).
std::uint16_t
free_port()
{
  Daemon probe;
  return probe.port();
}

// An MCP client's stdout that it stops reading: writes block, as on a full
// pipe, until read_again(), which must come before the bridge stops (its
// stop waits for its writer).
class StalledOutput {
public:
  explicit StalledOutput(Output& out)
      : out_(out)
  {
  }
  StalledOutput(const StalledOutput&) = delete;
  StalledOutput& operator=(const StalledOutput&) = delete;

  exai::net::McpBridge::Writer writer()
  {
    return [this](const std::string& line) {
      std::unique_lock lock(mutex_);
      ++stuck_;
      gate_.notify_all();
      gate_.wait(lock, [&] { return reading_; });
      out_.write(line);
    };
  }
  // Whether a write is blocked within `timeout`.
  bool wait_stuck(std::chrono::milliseconds timeout)
  {
    std::unique_lock lock(mutex_);
    return gate_.wait_for(lock, timeout, [&] { return stuck_ > 0; });
  }
  void read_again()
  {
    {
      const std::lock_guard lock(mutex_);
      reading_ = true;
    }
    gate_.notify_all();
  }

private:
  Output& out_;
  std::mutex mutex_;
  std::condition_variable gate_;
  bool reading_ = false;
  int stuck_ = 0;
};

// A daemon and a bridge whose MCP client stops reading its stdout.
struct StalledClient {
  explicit StalledClient(exai::net::BridgeOptions options = {})
      : stdout_pipe(out)
      , bridge(
            [&] {
              exai::net::DaemonAddress endpoint;
              endpoint.port = daemon.port();
              return endpoint;
            }(),
            std::move(options),
            stdout_pipe.writer(),
            spdlog::default_logger())
  {
  }
  // The client reads again before the bridge stops, however the test ended.
  ~StalledClient() { stdout_pipe.read_again(); }
  StalledClient(const StalledClient&) = delete;
  StalledClient& operator=(const StalledClient&) = delete;

  Daemon daemon;
  Output out;
  StalledOutput stdout_pipe;
  exai::net::McpBridge bridge;
};

} // namespace

TEST_CASE("the bridge forwards tools/list and tools/call to the daemon",
          "[net][mcp_bridge][integration]")
{
  Daemon daemon;
  Output out;
  auto bridge = make_bridge(daemon.port(), out);
  bridge->start();
  bridge->handle_line(R"({"jsonrpc":"2.0","id":1,"method":"tools/list"})");
  bridge->handle_line(call(2, "version"));
  bridge->handle_line(call(3, "busy"));
  bridge->handle_line(call(4, "nope"));
  const auto list = out.response(1);
  REQUIRE(list);
  CHECK((*list)["result"]["tools"].size() == 2);
  CHECK(out.call_succeeded(2));
  const auto busy = out.response(3);
  REQUIRE(busy);
  CHECK((*busy)["result"]["isError"] == true);
  CHECK((*busy)["result"]["content"][0]["text"].get<std::string>().find("OVER_CAPACITY") !=
        std::string::npos);
  const auto missing = out.response(4);
  REQUIRE(missing);
  CHECK((*missing)["error"]["code"] == -32602);
  bridge->stop();
  CHECK(bridge->pending_calls() == 0);
}

TEST_CASE("the bridge sends progress notifications when asked and none for a cancelled call",
          "[net][mcp_bridge][integration]")
{
  Daemon daemon;
  Output out;
  auto bridge = make_bridge(daemon.port(), out);
  bridge->start();
  bridge->handle_line(call(5, "slow", {{"progressToken", "p5"}}));
  const auto progress = out.wait_for([](const json& m) {
    return m.value("method", "") == "notifications/progress" &&
           m["params"]["progressToken"] == "p5";
  });
  REQUIRE(progress);
  REQUIRE(daemon.engine.wait_running(1, 5s));
  bridge->handle_line(
      R"({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":5}})");
  REQUIRE(daemon.engine.wait_idle(5s));
  CHECK(daemon.engine.cancel_count() == 1);
  // A later call's answer proves the CANCELLED result was consumed silently.
  bridge->handle_line(call(6, "version"));
  REQUIRE(out.response(6));
  CHECK_FALSE(out.response(5, 0ms));
  CHECK(bridge->pending_calls() == 0);
}

TEST_CASE("an MCP client that stops reading stalls neither the input nor the daemon connection",
          "[net][mcp_bridge][integration]")
{
  StalledClient client;
  client.bridge.start();
  client.bridge.handle_line(call(1, "version"));
  REQUIRE(client.stdout_pipe.wait_stuck(5s)); // its answer waits
  // Input is still read and forwarded, and the daemon's frames still handled:
  // before, the writer held the bridge's lock and both waited behind it.
  auto more = std::async(std::launch::async, [&] {
    client.bridge.handle_line(call(2, "slow", {{"progressToken", "p2"}}));
  });
  REQUIRE(more.wait_for(5s) == std::future_status::ready);
  CHECK(client.daemon.engine.wait_running(1, 5s));
  client.daemon.engine.release();
  CHECK(client.daemon.engine.wait_idle(5s));
  client.stdout_pipe.read_again();
  // Everything arrives, in order: the first answer before the second.
  REQUIRE(client.out.response(2));
  const auto lines = client.out.lines();
  const auto at = [&](int id) {
    return std::find_if(lines.begin(), lines.end(), [&](const json& m) {
      return m.contains("id") && m["id"] == id && m.contains("result");
    });
  };
  REQUIRE(at(1) != lines.end());
  CHECK(at(1) < at(2));
  CHECK((*at(2))["result"]["isError"] == false);
  client.bridge.stop();
}

TEST_CASE("an MCP client that stops reading makes the bridge drop progress, never responses",
          "[net][mcp_bridge][integration]")
{
  exai::net::BridgeOptions options;
  options.max_queued_notes_bytes = 1000;
  StalledClient client(options);
  client.bridge.start();
  client.bridge.handle_line(call(1, "version"));
  REQUIRE(client.stdout_pipe.wait_stuck(5s)); // the writer is stuck
  // Each call asks for progress: its accepted and ack notes, then its answer.
  constexpr int kCalls = 30;
  for (int id = 2; id < 2 + kCalls; ++id) {
    client.bridge.handle_line(call(id, "version", {{"progressToken", "p" + std::to_string(id)}}));
  }
  // Every answer reached the bridge (its calls are done) while nothing was read.
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (client.bridge.pending_calls() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  REQUIRE(client.bridge.pending_calls() == 0);
  client.stdout_pipe.read_again();
  for (int id = 1; id < 2 + kCalls; ++id) {
    CHECK(client.out.response(id)); // every response arrives
  }
  const auto lines = client.out.lines();
  const auto notes = std::count_if(lines.begin(), lines.end(), [](const json& m) {
    return m.value("method", "") == "notifications/progress";
  });
  // Two notes per call were made; those past the bound (about 1000 bytes of
  // output waiting) were dropped.
  CHECK(notes > 0);
  CHECK(notes < kCalls);
  client.bridge.stop();
}

TEST_CASE("a call fails with DAEMON_UNREACHABLE when no daemon appears in time",
          "[net][mcp_bridge][integration]")
{
  Output out;
  exai::net::BridgeOptions options;
  options.connect_timeout = 300ms;
  auto bridge = make_bridge(free_port(), out, options);
  bridge->start();
  bridge->handle_line(call(1, "version"));
  bridge->handle_line(R"({"jsonrpc":"2.0","id":2,"method":"tools/list"})");
  const auto reply = out.response(1);
  REQUIRE(reply);
  CHECK((*reply)["result"]["isError"] == true);
  CHECK((*reply)["result"]["content"][0]["text"].get<std::string>().find("DAEMON_UNREACHABLE") !=
        std::string::npos);
  const auto list = out.response(2);
  REQUIRE(list);
  CHECK((*list)["error"]["code"] == -32603);
  // The MCP session is still alive.
  bridge->handle_line(R"({"jsonrpc":"2.0","id":3,"method":"ping"})");
  CHECK(out.response(3));
}

TEST_CASE("a call made before the daemon starts is answered once it listens",
          "[net][mcp_bridge][integration]")
{
  const auto port = free_port();
  Output out;
  auto bridge = make_bridge(port, out);
  bridge->start();
  bridge->handle_line(call(1, "version"));
  Daemon daemon(port);
  CHECK(out.call_succeeded(1));
}

TEST_CASE("a daemon restart fails the call it lost and later calls work",
          "[net][mcp_bridge][integration]")
{
  auto daemon = std::make_unique<Daemon>();
  const auto port = daemon->port();
  Output out;
  auto bridge = make_bridge(port, out);
  bridge->start();
  bridge->handle_line(call(1, "slow"));
  REQUIRE(daemon->engine.wait_running(1, 5s));
  restart(daemon);
  const auto lost = out.response(1);
  REQUIRE(lost);
  CHECK((*lost)["result"]["isError"] == true);
  CHECK((*lost)["result"]["content"][0]["text"].get<std::string>().find("DAEMON_RESTARTED") !=
        std::string::npos);
  bridge->handle_line(call(2, "version"));
  CHECK(out.call_succeeded(2));
}

TEST_CASE("end of input returns 0 after in-flight calls are answered",
          "[net][mcp_bridge][integration]")
{
  Daemon daemon;
  Output out;
  auto bridge = make_bridge(daemon.port(), out);
  std::istringstream in(
      R"({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25"}})"
      "\n" +
      call(1, "version") + "\nnot json\n");
  CHECK(bridge->run(in) == 0);
  const auto lines = out.lines();
  REQUIRE(lines.size() == 3);
  CHECK(out.response(0, 0ms));
  CHECK(out.response(1, 0ms));
}

TEST_CASE("end of input cancels calls still running after the grace period",
          "[net][mcp_bridge][integration]")
{
  Daemon daemon;
  Output out;
  exai::net::BridgeOptions options;
  options.exit_grace = 200ms;
  auto bridge = make_bridge(daemon.port(), out, options);
  std::istringstream in(call(1, "slow") + "\n");
  CHECK(bridge->run(in) == 0);
  CHECK(daemon.engine.wait_idle(5s));
  CHECK(daemon.engine.cancel_count() == 1);
}

TEST_CASE("the bridge answers prompts from the daemon's tools and refuses a second initialize",
          "[net][mcp_bridge][integration]")
{
  Daemon daemon;
  Output out;
  auto bridge = make_bridge(daemon.port(), out);
  bridge->start();
  const std::string init =
      R"({"jsonrpc":"2.0","id":"i%","method":"initialize","params":{"protocolVersion":"2024-11-05","capabilities":{}}})";
  bridge->handle_line(std::string(init).replace(init.find('%'), 1, "1"));
  bridge->handle_line(std::string(init).replace(init.find('%'), 1, "2"));
  bridge->handle_line(R"({"jsonrpc":"2.0","id":5,"method":"prompts/list"})");
  bridge->handle_line(
      R"({"jsonrpc":"2.0","id":6,"method":"prompts/get","params":{"name":"version","arguments":{"thinking_mode":"low"}}})");
  bridge->handle_line(
      R"({"jsonrpc":"2.0","id":7,"method":"prompts/get","params":{"name":"gone"}})");

  const auto first = out.response("i1");
  REQUIRE(first);
  CHECK((*first)["result"]["protocolVersion"] == "2024-11-05");
  const auto second = out.response("i2");
  REQUIRE(second);
  CHECK((*second)["error"]["code"] == -32600);
  const auto list = out.response(5);
  REQUIRE(list);
  // The daemon's two tools, then continue.
  REQUIRE((*list)["result"]["prompts"].size() == 3);
  CHECK((*list)["result"]["prompts"][2]["name"] == "continue");
  const auto got = out.response(6);
  REQUIRE(got);
  CHECK((*got)["result"]["messages"][0]["content"]["text"] ==
        "Use the exai tool version with thinking_mode \"low\".");
  const auto unknown = out.response(7);
  REQUIRE(unknown);
  CHECK((*unknown)["error"]["code"] == -32602);
  bridge->stop();
}

TEST_CASE("a wrong token fails calls and tools/list at once with UNAUTHORIZED",
          "[net][mcp_bridge][integration]")
{
  Daemon daemon(0, "the-daemon-token-0123456789");
  Output out;
  exai::net::BridgeOptions options; // connect_timeout stays 30 s: nothing may wait for it
  auto bridge = make_bridge(daemon.port(), out, options);
  const auto started = std::chrono::steady_clock::now();
  bridge->start();
  bridge->handle_line(call(1, "version"));
  bridge->handle_line(R"({"jsonrpc":"2.0","id":2,"method":"tools/list"})");
  const auto reply = out.response(1, 5s);
  REQUIRE(reply);
  CHECK((*reply)["result"]["isError"] == true);
  const std::string text = (*reply)["result"]["content"][0]["text"];
  CHECK(text.find("UNAUTHORIZED") != std::string::npos);
  CHECK(text.find("EXAI_WS_TOKEN") != std::string::npos);
  const auto list = out.response(2, 5s);
  REQUIRE(list);
  CHECK((*list)["error"]["message"].get<std::string>().find("UNAUTHORIZED") != std::string::npos);
  CHECK(std::chrono::steady_clock::now() - started < 5s);
  bridge->stop();
}

TEST_CASE("tools/list is answered from the cached list while no daemon runs",
          "[net][mcp_bridge][integration]")
{
  exai::test::TempDir state;
  exai::net::BridgeOptions options;
  options.tools_cache_path = state.path() + "/sub/mcp-tools.json";
  {
    Daemon daemon;
    Output out;
    auto bridge = make_bridge(daemon.port(), out, options);
    bridge->start();
    bridge->handle_line(R"({"jsonrpc":"2.0","id":1,"method":"tools/list"})");
    REQUIRE(out.response(1));
    bridge->stop();
  }
  REQUIRE(std::filesystem::exists(options.tools_cache_path));
  Output out;
  auto bridge = make_bridge(free_port(), out, options);
  const auto started = std::chrono::steady_clock::now();
  bridge->start();
  bridge->handle_line(R"({"jsonrpc":"2.0","id":2,"method":"tools/list"})");
  const auto list = out.response(2, 5s);
  REQUIRE(list);
  CHECK((*list)["result"]["tools"].size() == 2);
  CHECK(std::chrono::steady_clock::now() - started < 5s);
  bridge->stop();
}

TEST_CASE("a changed daemon tool list is announced with notifications/tools/list_changed",
          "[net][mcp_bridge][integration]")
{
  exai::test::TempDir state;
  exai::net::BridgeOptions options;
  options.tools_cache_path = state.path() + "/mcp-tools.json";
  std::ofstream(options.tools_cache_path) << R"([{"name":"retired_tool","inputSchema":{}}])";
  const auto port = free_port();
  Output out;
  auto bridge = make_bridge(port, out, options);
  bridge->start();
  bridge->handle_line(
      R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{}}})");
  REQUIRE(out.response(1));
  bridge->handle_line(R"({"jsonrpc":"2.0","id":2,"method":"tools/list"})");
  const auto cached = out.response(2);
  REQUIRE(cached);
  CHECK((*cached)["result"]["tools"][0]["name"] == "retired_tool");
  Daemon daemon(port);
  CHECK(out.wait_for(
      [](const json& m) { return m.value("method", "") == "notifications/tools/list_changed"; }));
  bridge->handle_line(R"({"jsonrpc":"2.0","id":3,"method":"tools/list"})");
  const auto fresh = out.response(3);
  REQUIRE(fresh);
  CHECK((*fresh)["result"]["tools"].size() == 2);
  bridge->stop();
}

TEST_CASE("a call refused with SHUTTING_DOWN waits for the next daemon",
          "[net][mcp_bridge][integration]")
{
  auto daemon = std::make_unique<Daemon>();
  const auto port = daemon->port();
  daemon->engine.drain();
  Output out;
  auto bridge = make_bridge(port, out);
  bridge->start();
  bridge->handle_line(call(1, "version"));
  REQUIRE(daemon->engine.wait_submitted(1, 5s));
  restart(daemon);
  CHECK(out.call_succeeded(1));
  bridge->stop();
}

TEST_CASE("the bridge answers a batch as one array in a 2025-03-26 session and refuses it later",
          "[net][mcp_bridge][integration]")
{
  Daemon daemon;
  Output out;
  auto bridge = make_bridge(daemon.port(), out);
  bridge->start();
  const std::string version = GENERATE("2025-03-26", "2025-06-18");
  CAPTURE(version);
  bridge->handle_line(
      R"({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":")" + version +
      R"(","capabilities":{}}})");
  REQUIRE(out.response(0));
  bridge->handle_line(
      R"([{"jsonrpc":"2.0","id":"a","method":"ping"},{"jsonrpc":"2.0","id":"b","method":"tools/list"},)"
      R"({"jsonrpc":"2.0","id":"c","method":"tools/call","params":{"name":"version"}},)"
      R"({"jsonrpc":"2.0","method":"notifications/initialized"},{"x":1}])");
  const auto reply =
      out.wait_for([](const json& m) { return m.is_array() || m.contains("error"); });
  REQUIRE(reply);
  if (version == "2025-06-18") {
    CHECK((*reply)["error"]["code"] == -32600);
    return;
  }
  REQUIRE(reply->is_array());
  std::set<std::string> ids;
  for (const auto& item : *reply) {
    ids.insert(item["id"].is_null() ? "null" : item["id"].get<std::string>());
  }
  CHECK(ids == std::set<std::string>{"a", "b", "c", "null"});
  for (const auto& item : *reply) {
    if (item["id"] == "c") {
      CHECK(item["result"]["isError"] == false);
    }
    if (item["id"].is_null()) {
      CHECK(item["error"]["code"] == -32600);
    }
  }
  bridge->handle_line("[]");
  const auto empty = out.wait_for([](const json& m) {
    return m.is_object() && m.contains("error") &&
           m["error"]["message"] == "Invalid Request: empty batch";
  });
  CHECK(empty);
  bridge->stop();
}
