// exai serve end to end: many concurrent idle WebSocket connections on
// bounded threads, with calls still served. The normal suite opens 2,000
// (250 under sanitizers, which multiply memory and CPU per connection); the
// hidden [.scale] case opens 10,000 and prints RSS per idle connection:
//   build/serve/tests/e2e_tests "[.scale]" -s

#include "core/util/descriptor_limit.hpp"
#include "tests/support/sanitized.hpp"
#include "tests/support/serve_process.hpp"
#include "tests/support/ws_client.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <csignal>
#include <thread>

namespace {

using namespace exai::test;
using nlohmann::json;
using namespace std::chrono_literals;

constexpr int kSuiteConnections = kSanitized ? 250 : 2000;

ServeProcess::Env
scale_env()
{
  return {{"MAX_CONNECTIONS", "20000"},
          {"MAX_CONNECTIONS_PER_IP", "20000"},
          {"EXAI_WS_HELLO_TIMEOUT", "120"}};
}

// Opens `count` connections and says hello on each, from 4 threads.
// Returns the clients; `greeted` counts the acknowledged hellos.
std::vector<std::unique_ptr<WsClient>>
open_clients(std::uint16_t port, int count, std::atomic<int>& greeted)
{
  constexpr int kThreads = 4;
  std::vector<std::vector<std::unique_ptr<WsClient>>> per_thread(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = t; i < count; i += kThreads) {
        try {
          auto client = std::make_unique<WsClient>(port);
          const auto ack = client->hello(std::nullopt, deadline_in(30s));
          if (ack && ack->value("ok", false)) {
            ++greeted;
          }
          per_thread[static_cast<std::size_t>(t)].push_back(std::move(client));
        } catch (const std::exception&) {
          // counted as not greeted
        }
      }
    });
  }
  for (auto& thread : threads) {
    thread.join();
  }
  std::vector<std::unique_ptr<WsClient>> all;
  for (auto& group : per_thread) {
    for (auto& client : group) {
      all.push_back(std::move(client));
    }
  }
  return all;
}

bool
call_round_trip(WsClient& client, const std::string& request_id)
{
  client.send_json({{"op", "call_tool"}, {"request_id", request_id}, {"name", "version"}});
  const auto result = client.recv_until(
      [&](const json& f) {
        return f.value("op", "") == "call_tool_res" && f.value("request_id", "") == request_id;
      },
      deadline_in(30s));
  return result.has_value();
}

void
hold_connections(int count, bool report)
{
  // This process needs one descriptor per client connection.
  REQUIRE(exai::core::raise_descriptor_limit() > static_cast<std::uint64_t>(count + 100));
  auto serve = ServeProcess::start_ready(scale_env());
  // Baseline with one connection, so that pools and buffers already exist.
  WsClient first(serve->port());
  REQUIRE(first.hello());
  const auto rss_before = serve->rss_kib();
  std::atomic<int> greeted{0};
  auto clients = open_clients(serve->port(), count, greeted);
  CHECK(greeted.load() == count);
  const auto rss_after = serve->rss_kib();
  const auto threads = serve->thread_count();
  REQUIRE(rss_before);
  REQUIRE(rss_after);
  REQUIRE(threads);
  CHECK(*threads <= 16); // bounded: no thread per connection

  // Still serving: a call from the oldest and the newest connection, and health.
  CHECK(call_round_trip(first, "scale-first"));
  CHECK(call_round_trip(*clients.back(), "scale-last"));
  first.send_json({{"op", "health"}});
  const auto health = first.recv_until(
      [](const json& f) { return f.value("op", "") == "health_res"; }, deadline_in(10s));
  REQUIRE(health);
  CHECK(health->at("health").at("connections") == count + 1);

  const double per_connection =
      static_cast<double>(*rss_after - *rss_before) * 1024.0 / static_cast<double>(count);
  const std::string summary =
      "connections=" + std::to_string(count) + " rss_before_kib=" + std::to_string(*rss_before) +
      " rss_after_kib=" + std::to_string(*rss_after) +
      " rss_per_idle_connection_bytes=" + std::to_string(static_cast<long>(per_connection)) +
      " threads=" + std::to_string(*threads);
  if (report) {
    WARN(summary);
  } else {
    INFO(summary);
  }
  clients.clear();
  CHECK(serve->stop(SIGTERM) == 0);
}

} // namespace

TEST_CASE("thousands of idle connections are held on bounded threads while calls are served",
          "[e2e][serve][scale]")
{
  hold_connections(kSuiteConnections, false);
}

TEST_CASE("10,000 idle connections: RSS per connection and thread count", "[.scale]")
{
  hold_connections(10000, true);
}
