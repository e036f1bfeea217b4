// An event loop with a nested transfer loop: its thread finds the transfer
// loop through TransferLoop::here(), and the loop's own epoll wait drives the
// nested one's exchanges and timers.

#include "core/log.hpp"
#include "net/server/event_loop.hpp"
#include "tests/support/fake_upstream.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <future>
#include <thread>

using namespace exai::net;
using namespace exai::test;
using namespace std::chrono_literals;

TEST_CASE("an event loop drives its nested transfer loop on its own thread", "[net][transfer]")
{
  FakeUpstream fake;
  EventLoop loop(0,
                 Millis(50),
                 std::chrono::microseconds(0),
                 exai::core::log::get("net"),
                 TransferLoop::Options{});
  REQUIRE(loop.transfers() != nullptr);
  loop.start(nullptr);

  std::promise<TransferResult> answer;
  std::promise<std::thread::id> loop_thread;
  std::promise<std::thread::id> done_thread;
  std::promise<bool> timer_fired;
  TransferLoop* here = nullptr; // what the loop's thread found (read after its answer)
  loop.post([&] {
    here = TransferLoop::here();
    loop_thread.set_value(std::this_thread::get_id()); // publishes `here` too
    if (here == nullptr) {
      return; // the check below fails
    }
    TransferRequest request;
    request.pool = "glm";
    request.url = fake.base_url() + "/chat/completions";
    request.headers = {"Content-Type: application/json"};
    request.body = nlohmann::json{{"model", "glm-4.5-flash"},
                                  {"messages", {{{"role", "user"}, {"content", "nested"}}}}}
                       .dump();
    TransferHandlers handlers;
    handlers.on_done = [&](TransferResult result) {
      done_thread.set_value(std::this_thread::get_id());
      answer.set_value(std::move(result));
    };
    here->start(std::move(request), std::move(handlers));
    here->at(std::chrono::steady_clock::now() + 20ms, {}, [&](bool fired) {
      timer_fired.set_value(fired);
    });
  });
  const auto driver = loop_thread.get_future().get();
  REQUIRE(here == loop.transfers());
  auto result = answer.get_future();
  REQUIRE(result.wait_for(10s) == std::future_status::ready);
  const TransferResult got = result.get();
  CHECK(got.error == TransferError::none);
  CHECK(got.status == 200);
  CHECK(nlohmann::json::parse(got.body)["choices"][0]["message"]["content"] == "echo: nested");
  CHECK(done_thread.get_future().get() == driver);
  auto fired = timer_fired.get_future();
  REQUIRE(fired.wait_for(10s) == std::future_status::ready);
  CHECK(fired.get());
  CHECK(TransferLoop::here() == nullptr);
  loop.stop();
}

TEST_CASE("an event loop without transfers binds none", "[net][transfer]")
{
  EventLoop loop(0, Millis(50), std::chrono::microseconds(0), exai::core::log::get("net"));
  CHECK(loop.transfers() == nullptr);
  loop.start(nullptr);
  std::promise<TransferLoop*> seen;
  loop.post([&] { seen.set_value(TransferLoop::here()); });
  CHECK(seen.get_future().get() == nullptr);
  loop.stop();
}
