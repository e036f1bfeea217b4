#include "core/health/ui_snapshot.hpp"

#include <catch2/catch.hpp>

using namespace exai::core;
using nlohmann::json;

namespace {

UiInputs
sample()
{
  UiInputs in;
  HealthInputs& h = in.health;
  h.state = DaemonState::serving;
  h.pid = 42;
  h.host = "127.0.0.1";
  h.port = 8079;
  h.started_at = std::chrono::system_clock::time_point(std::chrono::seconds(1000));
  h.now = h.started_at + std::chrono::seconds(65);
  h.engine.capacity.global = {24, 2, 0};
  h.engine.capacity.providers = {{"glm", {1, 1, 1}}, {"kimi", {6, 0, 0}}};
  h.engine.circuits = {{"glm", "closed"}, {"kimi", "open"}};
  h.engine.upstream_latency["glm"] = HistogramSnapshot{{0.1, 1, 10}, {1, 2, 1, 0}, 5.0, 4};
  h.server.connections = 3;
  h.server.sessions = 2;
  const auto call = [](std::string id, std::string_view state, long ms) {
    InflightCallView view;
    view.request_id = std::move(id);
    view.session_id = "session-0123456789abcdef";
    view.tool = "chat";
    view.model = "glm-4.5";
    view.provider = "glm";
    view.state = state;
    view.waiting_for = state == "waiting" ? "provider (glm)" : "";
    view.elapsed = std::chrono::milliseconds(ms);
    view.arguments = std::make_shared<const json>(json{{"prompt", "the secret prompt"}});
    return view;
  };
  in.inflight = {call("short", "waiting", 10), call("long", "running", 5000)};
  in.recent = {json{{"tool", "chat"}, {"outcome", "ok"}, {"prompt", "old prompt"}}};
  in.per_minute = {{100, 3, 1}};
  return in;
}

} // namespace

TEST_CASE("the snapshot lists calls in flight longest first, without prompts by default",
          "[core][ui_snapshot]")
{
  const json doc = ui_snapshot_json(sample());
  CHECK(doc["version"] == kUiSnapshotVersion);
  CHECK(doc["daemon"]["state"] == "serving");
  CHECK(doc["daemon"]["connections"] == 3);
  REQUIRE(doc["inflight"].size() == 2);
  CHECK(doc["inflight"][0]["request_id"] == "long");
  CHECK(doc["inflight"][0]["state"] == "running");
  CHECK(doc["inflight"][1]["state"] == "waiting");
  CHECK(doc["inflight"][1]["waiting_for"] == "provider (glm)");
  CHECK(doc["inflight"][0]["session"] != "session-0123456789abcdef");
  CHECK(doc.dump().find("secret prompt") == std::string::npos);
  CHECK(doc.dump().find("old prompt") == std::string::npos);
  CHECK(doc["show_content"] == false);
}

TEST_CASE("the snapshot has scopes, providers and calls per minute", "[core][ui_snapshot]")
{
  const json doc = ui_snapshot_json(sample());
  REQUIRE(doc["scopes"].size() == 5);
  CHECK(doc["scopes"][0] ==
        json{{"name", "global"}, {"capacity", 24}, {"in_use", 2}, {"waiting", 0}});
  CHECK(doc["scopes"][1]["name"] == "provider glm");
  CHECK(doc["scopes"][1]["waiting"] == 1);
  REQUIRE(doc["providers"].size() == 2);
  CHECK(doc["providers"][0]["id"] == "glm");
  CHECK(doc["providers"][0]["upstream"]["count"] == 4);
  CHECK(doc["providers"][0]["upstream"]["mean_ms"] == 1250);
  CHECK(doc["providers"][0]["upstream"]["p50_ms"] == 1000);
  CHECK(doc["providers"][1]["circuit"] == "open");
  CHECK(doc["daemon"]["healthy"] == false);
  CHECK(doc["per_minute"][0] == json{{"minute", 100}, {"calls", 3}, {"errors", 1}});
}

TEST_CASE("with show_content the snapshot carries prompt excerpts", "[core][ui_snapshot]")
{
  UiInputs in = sample();
  in.show_content = true;
  const json doc = ui_snapshot_json(in);
  CHECK(doc["inflight"][0]["prompt"] == "the secret prompt");
  CHECK(doc["recent"][0]["prompt"] == "old prompt");
}

TEST_CASE("histogram quantiles are bucket upper bounds in ms", "[core][ui_snapshot]")
{
  const HistogramSnapshot h{{0.1, 1, 10}, {1, 2, 1, 0}, 5.0, 4};
  CHECK(histogram_quantile_ms(h, 0.25) == 100);
  CHECK(histogram_quantile_ms(h, 0.5) == 1000);
  CHECK(histogram_quantile_ms(h, 0.95) == 10000);
  CHECK(histogram_quantile_ms(HistogramSnapshot{}, 0.5) == 0);
}
