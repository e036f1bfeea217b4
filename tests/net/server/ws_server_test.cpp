// WsServer in process with a fake call engine: routing of ops to the engine,
// the HTTP router, and connection bookkeeping of the hub.

#include "core/log.hpp"
#include "net/server/ws_server.hpp"
#include "tests/support/daemon_checks.hpp"
#include "tests/support/fake_call_engine.hpp"
#include "tests/support/ws_client.hpp"

#include <Poco/Net/HTTPResponse.h>
#include <catch2/catch.hpp>

#include <fstream>

namespace {

using namespace exai::test;
using nlohmann::json;
using namespace std::chrono_literals;

exai::core::DaemonConfig
test_config()
{
  exai::core::DaemonConfig config;
  config.port = 0;
  config.max_connections = 5000;
  config.max_connections_per_ip = 5000;
  return config;
}

struct WsFixture {
  FakeCallEngine engine;
  exai::net::WsServer server;

  explicit WsFixture(const exai::core::DaemonConfig& config = test_config())
      : server(
            config,
            engine,
            [] {
              return json{{"state", "running"}};
            },
            exai::core::log::get("net"))
  {
  }

  // Starts the server; a connection whose hello was acknowledged.
  std::unique_ptr<WsClient> start_greeted()
  {
    server.start();
    auto client = std::make_unique<WsClient>(server.port());
    REQUIRE(client->hello());
    return client;
  }
};

bool
wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout)
{
  // The server side finishes asynchronously; check with a deadline.
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      return false;
    }
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

long
threads_of_this_process()
{
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("Threads:", 0) == 0) {
      return std::stol(line.substr(8));
    }
  }
  return -1;
}

} // namespace

TEST_CASE("call_tool reaches the engine with the suffix stripped and the session id",
          "[net][server]")
{
  WsFixture f;
  f.server.start();
  WsClient client(f.server.port());
  const auto ack = client.hello();
  REQUIRE(ack);
  client.send_json({{"op", "call_tool"},
                    {"request_id", "r1"},
                    {"name", "echo_EXAI-WS"},
                    {"arguments", {{"x", 1}}}});
  const auto result = client.recv_json(deadline_in(5s));
  REQUIRE(result);
  CHECK(result->at("op") == "call_tool_res");
  CHECK(result->at("request_id") == "r1");
  CHECK(result->at("text") == "ok:echo");
  const auto calls = f.engine.calls();
  REQUIRE(calls.size() == 1);
  CHECK(calls[0].request.tool == "echo");
  CHECK(calls[0].request.arguments == json{{"x", 1}});
  CHECK(calls[0].request.session_id == ack->at("session_id"));
}

TEST_CASE("several calls of one session interleave and each gets its result", "[net][server]")
{
  WsFixture f;
  f.engine.set_auto_reply(false);
  const auto client = f.start_greeted();
  for (int i = 0; i < 3; ++i) {
    client->send_json(
        {{"op", "call_tool"}, {"request_id", "r" + std::to_string(i)}, {"name", "echo"}});
  }
  REQUIRE(f.engine.wait_for_calls(3, 5s));
  auto calls = f.engine.calls();
  for (auto it = calls.rbegin(); it != calls.rend(); ++it) { // answer in reverse order
    auto sink = it->sink.lock();
    REQUIRE(sink);
    sink->on_result(it->request.request_id, exai::core::ToolSuccess{{"done"}});
  }
  for (const char* expected : {"r2", "r1", "r0"}) {
    const auto result = client->recv_json(deadline_in(5s));
    REQUIRE(result);
    CHECK(result->at("request_id") == expected);
  }
}

TEST_CASE("results sent from call threads arrive whole and in order past a full socket",
          "[net][server]")
{
  // A result thread writes straight to the socket while nothing is queued; what
  // the socket does not take must queue behind it without losing a byte.
  WsFixture f;
  f.engine.set_auto_reply(false);
  const auto client = f.start_greeted();
  constexpr int kCalls = 6;
  for (int i = 0; i < kCalls; ++i) {
    client->send_json(
        {{"op", "call_tool"}, {"request_id", "r" + std::to_string(i)}, {"name", "echo"}});
  }
  REQUIRE(f.engine.wait_for_calls(kCalls, 5s));
  const auto calls = f.engine.calls();
  for (int i = 0; i < kCalls; ++i) { // the client reads nothing meanwhile
    auto sink = calls.at(i).sink.lock();
    REQUIRE(sink);
    const std::string text(std::size_t{1} << 20U, static_cast<char>('a' + i));
    CHECK(sink->on_result(calls.at(i).request.request_id, exai::core::ToolSuccess{{text}}));
  }
  for (int i = 0; i < kCalls; ++i) {
    const auto result = client->recv_json(deadline_in(10s));
    REQUIRE(result);
    CHECK(result->at("request_id") == "r" + std::to_string(i));
    const std::string text = result->at("outputs").at(0).at("text");
    CHECK(text.size() == std::size_t{1} << 20U);
    CHECK(text.find_first_not_of(static_cast<char>('a' + i)) == std::string::npos);
  }
}

TEST_CASE("an answer past the hard cap drops the connection after the engine's callback returns",
          "[net][server]")
{
  // The engine answers under its own locks (a joined call's ack, a cancel's
  // result), on the loop thread too. A drop run inside that answer would call
  // the engine back (undelivered results) while it still holds them.
  auto config = test_config();
  config.send_queue_bytes = 4096;
  config.max_bytes = 65536; // hard cap: 4 x 4096 + 65536 bytes
  WsFixture f(config);
  f.engine.set_reply_texts({"queued first", std::string(std::size_t{1} << 20U, 'x')});
  const auto client = f.start_greeted();
  client->send_json({{"op", "call_tool"}, {"request_id", "r1"}, {"name", "echo"}});
  REQUIRE(f.engine.wait_for_undelivered(1, 5s));
  const auto undelivered = f.engine.undelivered_calls().at(0);
  CHECK_FALSE(undelivered.inside_submit);
  CHECK(undelivered.request_ids == std::vector<std::string>{"r1"}); // the first answer, unsent
  CHECK(wait_until([&] { return f.server.connection_count() == 0; }, 5s));
}

TEST_CASE("frames for a connection that is gone are dropped quietly", "[net][server]")
{
  WsFixture f;
  f.engine.set_auto_reply(false);
  {
    const auto client = f.start_greeted();
    client->send_json({{"op", "call_tool"}, {"request_id", "r"}, {"name", "echo"}});
    REQUIRE(f.engine.wait_for_calls(1, 5s));
    client->close();
  }
  REQUIRE(wait_until([&] { return f.server.connection_count() == 0; }, 5s));
  auto sink = f.engine.calls().at(0).sink.lock();
  if (sink) { // still referenced somewhere: sending must be a harmless no-op
    CHECK_FALSE(sink->on_result("r", exai::core::ToolSuccess{{"late"}}));
  }
  CHECK(f.server.connection_count() == 0);
}

TEST_CASE("a resumed session is attached to the engine", "[net][server]")
{
  WsFixture f;
  f.server.start();
  std::string id;
  {
    WsClient first(f.server.port());
    const auto ack = first.hello();
    REQUIRE(ack);
    id = ack->at("session_id").get<std::string>();
  }
  WsClient second(f.server.port());
  second.send_json({{"op", "hello"}, {"session_id", id}});
  const auto ack = second.recv_json(deadline_in(5s));
  REQUIRE(ack);
  CHECK(ack->at("session_id") == id);
  REQUIRE(f.engine.wait_for_attaches(1, 5s));
  CHECK(f.engine.attached_sessions() == std::vector<std::string>{id});
}

TEST_CASE("cancel_tool goes to the engine with the session id", "[net][server]")
{
  WsFixture f;
  f.engine.set_cancel_result(true);
  f.server.start();
  WsClient client(f.server.port());
  const auto ack = client.hello();
  REQUIRE(ack);
  client.send_json({{"op", "cancel_tool"}, {"request_id", "r5"}});
  // A found call answers through the engine; nothing comes from the server.
  CHECK_FALSE(client.recv_frame(deadline_in(300ms)));
  const auto cancels = f.engine.cancels();
  REQUIRE(cancels.size() == 1);
  CHECK(cancels[0].first == ack->at("session_id"));
  CHECK(cancels[0].second == "r5");
}

TEST_CASE("registered HTTP routes answer on the WebSocket port", "[net][server][http]")
{
  WsFixture f;
  f.server.router().add("GET", "/health", [](exai::net::HttpExchange& exchange) {
    exai::net::HttpRouter::send_json(
        exchange.response(), Poco::Net::HTTPResponse::HTTP_OK, R"({"ok":true})");
  });
  f.server.start();
  const auto health = http_request(f.server.port(), "GET", "/health");
  CHECK(health.status == 200);
  CHECK(health.body == R"({"ok":true})");
  CHECK(http_request(f.server.port(), "GET", "/health?verbose=1").status == 200);
  CHECK(http_request(f.server.port(), "POST", "/health").status == 405);
  const auto missing = http_request(f.server.port(), "GET", "/missing");
  CHECK(missing.status == 404);
  CHECK(json::parse(missing.body).at("error").at("code") == "NOT_FOUND");
  // The WebSocket side still works on the same port.
  WsClient client(f.server.port());
  CHECK(client.hello());
}

TEST_CASE("connections do not pin threads", "[net][server][hub]")
{
  WsFixture f;
  f.server.start();
  std::vector<std::unique_ptr<WsClient>> clients;
  // Warm up the HTTP pool, then count.
  clients.push_back(std::make_unique<WsClient>(f.server.port()));
  REQUIRE(clients.back()->hello());
  const long before = threads_of_this_process();
  constexpr int kClients = 300;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(std::make_unique<WsClient>(f.server.port()));
    REQUIRE(clients.back()->hello());
  }
  CHECK(threads_of_this_process() - before <= 4); // at most the HTTP pool growing
  CHECK(f.server.connection_count() == kClients + 1);
  CHECK(f.server.session_count() == kClients + 1);
  clients.clear(); // sockets closed without a close frame
  CHECK(wait_until([&] { return f.server.connection_count() == 0; }, 10s));
}

TEST_CASE("every event loop serves its connections, polling or not", "[net][server][hub]")
{
  auto config = test_config();
  config.worker_threads = 3;
  config.busy_poll = std::chrono::microseconds(GENERATE(0, 200));
  CAPTURE(config.busy_poll.count());
  WsFixture f(config);
  f.server.start();
  // Connections go to the loops in turn: six clients cover each loop twice.
  std::vector<std::unique_ptr<WsClient>> clients;
  for (int i = 0; i < 6; ++i) {
    clients.push_back(std::make_unique<WsClient>(f.server.port()));
    REQUIRE(clients.back()->hello());
  }
  constexpr int kRounds = 3;
  for (int round = 0; round < kRounds; ++round) { // answered on the loop itself
    for (std::size_t i = 0; i < clients.size(); ++i) {
      const std::string id = "inline-" + std::to_string(round) + "-" + std::to_string(i);
      clients[i]->send_json({{"op", "call_tool"}, {"request_id", id}, {"name", "echo"}});
      const auto result = clients[i]->recv_json(deadline_in(5s));
      REQUIRE(result);
      CHECK(result->at("request_id") == id);
    }
  }
  // Answered from another thread: the owning loop must be woken to write.
  f.engine.set_auto_reply(false);
  for (std::size_t i = 0; i < clients.size(); ++i) {
    clients[i]->send_json(
        {{"op", "call_tool"}, {"request_id", "later-" + std::to_string(i)}, {"name", "echo"}});
  }
  const std::size_t answered_inline = kRounds * clients.size();
  REQUIRE(f.engine.wait_for_calls(answered_inline + clients.size(), 5s));
  const auto calls = f.engine.calls();
  for (std::size_t i = answered_inline; i < calls.size(); ++i) {
    auto sink = calls[i].sink.lock();
    REQUIRE(sink);
    sink->on_result(calls[i].request.request_id, exai::core::ToolSuccess{{"done"}});
  }
  for (std::size_t i = 0; i < clients.size(); ++i) {
    const auto result = clients[i]->recv_json(deadline_in(5s));
    REQUIRE(result);
    CHECK(result->at("request_id") == "later-" + std::to_string(i));
  }
  clients.clear();
  CHECK(wait_until([&] { return f.server.connection_count() == 0; }, 10s));
}

TEST_CASE("busy polling follows only short idle gaps", "[net][hub]")
{
  using exai::net::poll_next_wait;
  using std::chrono::microseconds;
  CHECK(poll_next_wait(1, microseconds(40), microseconds(100)));
  CHECK(poll_next_wait(3, microseconds(100), microseconds(100)));
  CHECK_FALSE(poll_next_wait(1, microseconds(101), microseconds(100))); // a long gap stops it
  CHECK_FALSE(poll_next_wait(0, microseconds(5), microseconds(100)));   // a timer wake-up
  CHECK_FALSE(poll_next_wait(1, microseconds(0), microseconds(0)));     // disabled
}

TEST_CASE("stop closes open connections with 1001", "[net][server]")
{
  WsFixture f;
  const auto client = f.start_greeted();
  std::thread stopper([&] { f.server.stop(); });
  CHECK(client->wait_close(deadline_in(5s)) == 1001);
  stopper.join();
  CHECK(f.server.connection_count() == 0);
}
