#include "net/upstream/transfer_loop.hpp"
#include "tests/net/upstream/upstream_fixture.hpp"
#include "tests/support/eventually.hpp"
#include "tests/support/fake_upstream.hpp"
#include "tests/support/test_ca.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace exai::net;
using namespace exai::test;
using namespace std::chrono_literals;

namespace {

constexpr const char* kTransferKey = "sk-transfer-test-key";

// A chat request to `fake` whose user message is `prompt` (directives apply).
TransferRequest
transfer_chat(const FakeUpstream& fake, const std::string& prompt, bool stream = false)
{
  TransferRequest request;
  request.pool = "glm";
  request.url = fake.base_url() + "/chat/completions";
  request.headers = {"Content-Type: application/json",
                     std::string("Authorization: Bearer ") + kTransferKey};
  request.body = nlohmann::json{{"model", "glm-4.5-flash"},
                                {"stream", stream},
                                {"messages", {{{"role", "user"}, {"content", prompt}}}}}
                     .dump();
  request.connect_timeout = 2s;
  request.read_timeout = 5s;
  return request;
}

// Starts `request` and hands back a future of its result.
std::future<TransferResult>
start_transfer(TransferLoop& loop,
               TransferRequest request,
               std::stop_token stop = {},
               std::function<bool(const TransferResult&, std::string_view)> on_body = nullptr,
               TransferLoop::Id* id = nullptr)
{
  auto promise = std::make_shared<std::promise<TransferResult>>();
  auto future = promise->get_future();
  TransferHandlers handlers;
  handlers.on_body = std::move(on_body);
  handlers.on_done = [promise](TransferResult result) { promise->set_value(std::move(result)); };
  const auto started = loop.start(std::move(request), std::move(handlers), std::move(stop));
  if (id != nullptr) {
    *id = started;
  }
  return future;
}

TransferResult
await_transfer(std::future<TransferResult>& future)
{
  REQUIRE(future.wait_for(10s) == std::future_status::ready);
  return future.get();
}

TransferResult
run_transfer(TransferLoop& loop, TransferRequest request)
{
  auto future = start_transfer(loop, std::move(request));
  return await_transfer(future);
}

std::string
reply_text(const TransferResult& result)
{
  INFO(result.message);
  REQUIRE(result.error == TransferError::none);
  REQUIRE(result.status == 200);
  return nlohmann::json::parse(result.body).at("choices").at(0).at("message").at("content");
}

} // namespace

TEST_CASE("a transfer posts the request and collects the answer", "[net][transfer]")
{
  FakeUpstream fake;
  TransferThread thread;
  const auto result = run_transfer(thread.loop(), transfer_chat(fake, "hello loop"));
  CHECK(reply_text(result) == "echo: hello loop");
  CHECK(result.header("msh-request-id").rfind("fake-req-", 0) == 0);
  CHECK(result.answered);
  CHECK_FALSE(result.reused);
  const auto recorded = fake.requests().at(0);
  CHECK(recorded.method == "POST");
  CHECK(recorded.path == "/v1/chat/completions");
  CHECK(recorded.headers.at("Authorization") == std::string("Bearer ") + kTransferKey);
  CHECK(nlohmann::json::parse(recorded.body).at("messages").at(0).at("content") == "hello loop");
  CHECK(thread.loop().running() == 0);
}

TEST_CASE("a large request goes out at once, without waiting for 100-continue", "[net][transfer]")
{
  FakeUpstream fake;
  TransferThread thread;
  const std::string prompt(1536 * 1024, 'x'); // past libcurl's 1 MiB Expect threshold
  const auto result = run_transfer(thread.loop(), transfer_chat(fake, prompt));
  CHECK(reply_text(result).size() == prompt.size() + 6);
  CHECK(fake.requests().at(0).headers.count("Expect") == 0);
}

TEST_CASE("sequential transfers share one kept-alive connection", "[net][transfer]")
{
  FakeUpstream fake;
  TransferThread thread;
  std::vector<bool> reused;
  for (const char* prompt : {"one", "two", "three"}) {
    const auto result = run_transfer(thread.loop(), transfer_chat(fake, prompt));
    CHECK(reply_text(result) == std::string("echo: ") + prompt);
    reused.push_back(result.reused);
  }
  CHECK(reused == std::vector<bool>{false, true, true});
  CHECK(fake.accepted_connections() == 1);
  const auto stats = thread.loop().stats("glm");
  CHECK(stats.opened == 1);
  CHECK(stats.reused == 2);
  CHECK(stats.idle == 1);
  CHECK(stats.leased == 0);
  CHECK(stats.stale_retries == 0);
}

TEST_CASE("a max idle of 0 opens a connection per transfer and keeps none", "[net][transfer]")
{
  FakeUpstream fake;
  TransferThread thread;
  for (const char* prompt : {"a", "b"}) {
    auto request = transfer_chat(fake, prompt);
    request.max_idle = 0s;
    CHECK(reply_text(run_transfer(thread.loop(), std::move(request))) ==
          std::string("echo: ") + prompt);
  }
  CHECK(fake.accepted_connections() == 2);
  CHECK(thread.loop().stats("glm").idle == 0);
  CHECK(fake.wait_for_open_connections_at_most(0, 5s));
}

TEST_CASE("transfers run at the same time on the loop's one thread", "[net][transfer]")
{
  FakeUpstream fake;
  TransferThread thread;
  std::vector<std::future<TransferResult>> futures;
  for (int i = 0; i < 16; ++i) {
    futures.push_back(start_transfer(
        thread.loop(), transfer_chat(fake, "wait " + std::to_string(i) + " [[hang]]")));
  }
  REQUIRE(fake.wait_for_concurrency(16, 10s));
  CHECK(thread.loop().running() == 16);
  CHECK(thread.loop().stats("glm").leased == 16);
  fake.release_hangs();
  for (int i = 0; i < 16; ++i) {
    CHECK(reply_text(await_transfer(futures[static_cast<std::size_t>(i)])) ==
          "echo: wait " + std::to_string(i) + " [[hang]]");
  }
  CHECK(thread.loop().stats("glm").idle == 16);
}

TEST_CASE("a kept-alive connection dropped before any answer byte is resent once on a new one",
          "[net][transfer]")
{
  FakeUpstream fake;
  TransferThread thread;
  reply_text(run_transfer(thread.loop(), transfer_chat(fake, "warm up")));
  // The server reads the request on the kept-alive connection and drops it
  // unanswered, as when it closed the idle connection just before.
  const auto result =
      run_transfer(thread.loop(), transfer_chat(fake, "x [[reset]][[fail_times=1]]"));
  CHECK(reply_text(result) == "echo: x [[reset]][[fail_times=1]]");
  CHECK(result.reused);
  CHECK(result.retried_fresh);
  const auto stats = thread.loop().stats("glm");
  CHECK(stats.stale_retries == 1);
  CHECK(stats.opened == 2);
  CHECK(fake.request_count() == 3);
}

TEST_CASE("a fresh connection dropped before answering fails as broken, not resent",
          "[net][transfer]")
{
  FakeUpstream fake;
  TransferThread thread;
  const auto result = run_transfer(thread.loop(), transfer_chat(fake, "[[reset]]"));
  CHECK(result.error == TransferError::broken);
  CHECK_FALSE(result.answered);
  CHECK_FALSE(result.retried_fresh);
  CHECK(fake.request_count() == 1);
  CHECK(thread.loop().stats("glm").stale_retries == 0);
}

TEST_CASE("a connection that breaks after answer bytes fails as broken and is not kept",
          "[net][transfer]")
{
  FakeUpstream fake;
  TransferThread thread;
  reply_text(run_transfer(thread.loop(), transfer_chat(fake, "warm up")));
  const auto result = run_transfer(thread.loop(), transfer_chat(fake, "[[truncate]]"));
  CHECK(result.error == TransferError::broken);
  CHECK(result.answered);
  CHECK(result.status == 200);
  CHECK_FALSE(result.retried_fresh);
  reply_text(run_transfer(thread.loop(), transfer_chat(fake, "after")));
  const auto stats = thread.loop().stats("glm");
  CHECK(stats.opened == 2);
  CHECK(stats.reused == 1);
  CHECK(stats.stale_retries == 0);
}

TEST_CASE("a connection the server closed while idle is not used again", "[net][transfer]")
{
  FakeUpstream fake;
  TransferThread thread;
  reply_text(run_transfer(thread.loop(), transfer_chat(fake, "bye [[close]]")));
  REQUIRE(fake.wait_for_open_connections_at_most(0, 5s));
  const auto result = run_transfer(thread.loop(), transfer_chat(fake, "again"));
  CHECK(reply_text(result) == "echo: again");
  CHECK_FALSE(result.reused);
  const auto stats = thread.loop().stats("glm");
  CHECK(stats.opened == 2);
  CHECK(stats.reused == 0);
  CHECK(stats.stale_retries == 0);
  CHECK(fake.request_count() == 2);
}

TEST_CASE("a kept-alive connection is not used past max idle or the server's hint",
          "[net][transfer]")
{
  FakeUpstream::Options options;
  // "Keep-Alive: timeout=2": with a second's margin, reused only when idle
  // under 1 s; max_idle 1 s says the same from our side.
  const bool hinted = GENERATE(true, false);
  options.keep_alive_hint = hinted ? 2 : 0;
  FakeUpstream fake(options);
  TransferThread thread;
  auto request = [&](const char* prompt) {
    auto r = transfer_chat(fake, prompt);
    r.max_idle = hinted ? 60s : 1s;
    return run_transfer(thread.loop(), std::move(r));
  };
  CHECK_FALSE(request("one").reused);
  CHECK(request("two").reused);
  // Not a guess at how long anything takes: the rule under test is "idle
  // more than a second is not reused", so the test idles longer than that.
  std::this_thread::sleep_for(1100ms);
  CHECK_FALSE(request("three").reused);
  CHECK(thread.loop().stats("glm").opened == 2);
}

TEST_CASE("a loop that ran nothing for max idle closes its kept-alive connections",
          "[net][transfer]")
{
  FakeUpstream fake;
  TransferThread thread;
  auto request = transfer_chat(fake, "one");
  request.max_idle = 1s;
  CHECK(reply_text(run_transfer(thread.loop(), request)) == "echo: one");
  const auto ended = std::chrono::steady_clock::now();
  CHECK(thread.loop().stats("glm").idle == 1);
  REQUIRE(fake.wait_for_open_connections_at_most(0, 5s));
  CHECK(std::chrono::steady_clock::now() - ended >= 900ms); // kept until its idle time
  CHECK(eventually([&] { return thread.loop().stats("glm").idle == 0; }));
  CHECK(reply_text(run_transfer(thread.loop(), transfer_chat(fake, "two"))) == "echo: two");
  CHECK(thread.loop().stats("glm").opened == 2);
}

TEST_CASE("cancel ends a transfer at once and closes its connection", "[net][transfer]")
{
  FakeUpstream fake;
  TransferThread thread;
  TransferLoop::Id id = 0;
  auto future = start_transfer(thread.loop(), transfer_chat(fake, "[[hang]]"), {}, nullptr, &id);
  REQUIRE(fake.wait_for_concurrency(1, 5s));
  thread.loop().cancel(id);
  const auto result = await_transfer(future);
  CHECK(result.error == TransferError::cancelled);
  CHECK(thread.loop().stats("glm").idle == 0); // its socket is closed, not kept
  fake.release_hangs();
  thread.loop().cancel(id); // ended: nothing happens
  CHECK(reply_text(run_transfer(thread.loop(), transfer_chat(fake, "next"))) == "echo: next");
  CHECK(thread.loop().stats("glm").opened == 2);
}

TEST_CASE("a stop request cancels a transfer, also one stopped before it started",
          "[net][transfer]")
{
  FakeUpstream fake;
  TransferThread thread;
  std::stop_source stop;
  auto future = start_transfer(thread.loop(), transfer_chat(fake, "[[hang]]"), stop.get_token());
  REQUIRE(fake.wait_for_concurrency(1, 5s));
  stop.request_stop();
  CHECK(await_transfer(future).error == TransferError::cancelled);
  CHECK(thread.loop().stats("glm").idle == 0);

  auto early = start_transfer(thread.loop(), transfer_chat(fake, "never sent"), stop.get_token());
  CHECK(await_transfer(early).error == TransferError::cancelled);
  fake.release_hangs();
  CHECK(fake.request_count() == 1);
}

TEST_CASE("the deadline ends a transfer as timeout", "[net][transfer]")
{
  FakeUpstream fake;
  TransferThread thread;
  auto request = transfer_chat(fake, "[[hang]]");
  request.deadline = TransferClock::now() + 200ms;
  const auto result = run_transfer(thread.loop(), std::move(request));
  CHECK(result.error == TransferError::timeout);
  CHECK(result.message == "the deadline passed");
  CHECK(thread.loop().stats("glm").idle == 0);
  fake.release_hangs();
}

TEST_CASE("silence before the answer ends as timeout, silence within it as stalled",
          "[net][transfer]")
{
  FakeUpstream fake;
  TransferThread thread;
  auto silent = transfer_chat(fake, "[[hang]]");
  silent.read_timeout = 200ms;
  const auto before = run_transfer(thread.loop(), std::move(silent));
  CHECK(before.error == TransferError::timeout);
  CHECK(before.message == "no answer within 200 ms");
  CHECK_FALSE(before.answered);
  fake.release_hangs();

  // Half the events, then nothing: the stall limit applies, not read_timeout.
  auto stalling = transfer_chat(fake, "[[stall_ms=20000]][[chunks=6]]", true);
  stalling.stall_timeout = 200ms;
  stalling.read_timeout = 30s; // longer than the wait below: only the stall limit can end it
  std::string seen;
  auto future = start_transfer(thread.loop(),
                               std::move(stalling),
                               {},
                               [&](const TransferResult& head, std::string_view piece) {
                                 CHECK(head.status == 200);
                                 seen.append(piece);
                                 return true;
                               });
  const auto within = await_transfer(future);
  CHECK(within.error == TransferError::stalled);
  CHECK(within.message == "the answer stalled: nothing for 200 ms");
  CHECK(within.answered);
  CHECK(seen.find("data: ") != std::string::npos);
  CHECK(within.body.empty()); // the handler took the pieces
}

TEST_CASE("an answer slower in all than the stall limit, but never silent that long, completes",
          "[net][transfer]")
{
  FakeUpstream fake;
  TransferThread thread;
  // 15 events 100 ms apart: 1.5 s in all, never a second of silence.
  auto request = transfer_chat(fake, "slow [[chunks=15]][[chunk_ms=100]]", true);
  request.stall_timeout = 1s;
  request.read_timeout = 1s;
  std::string seen;
  auto future = start_transfer(
      thread.loop(), std::move(request), {}, [&](const TransferResult&, std::string_view piece) {
        seen.append(piece);
        return true;
      });
  const auto result = await_transfer(future);
  INFO(result.message);
  CHECK(result.error == TransferError::none);
  CHECK(seen.find("data: [DONE]") != std::string::npos);
}

TEST_CASE("a streamed answer reaches the body handler whole, a 1 MB event included",
          "[net][transfer]")
{
  FakeUpstream fake;
  TransferThread thread;
  std::string seen;
  int pieces = 0;
  auto future = start_transfer(thread.loop(),
                               transfer_chat(fake, "[[big_event=1000000]]", true),
                               {},
                               [&](const TransferResult& head, std::string_view piece) {
                                 CHECK(head.header("content-type").find("text/event-stream") == 0);
                                 seen.append(piece);
                                 ++pieces;
                                 return true;
                               });
  const auto result = await_transfer(future);
  CHECK(result.error == TransferError::none);
  CHECK(pieces > 1);
  CHECK(seen.size() > 1000000);
  CHECK(seen.find("data: [DONE]") != std::string::npos);
}

TEST_CASE("a body handler that refuses a piece ends the transfer as aborted", "[net][transfer]")
{
  FakeUpstream fake;
  TransferThread thread;
  auto future = start_transfer(thread.loop(),
                               transfer_chat(fake, "[[chunks=8]][[chunk_ms=20]]", true),
                               {},
                               [](const TransferResult&, std::string_view) { return false; });
  const auto result = await_transfer(future);
  CHECK(result.error == TransferError::aborted);
  CHECK(fake.wait_for_open_connections_at_most(0, 5s));
}

TEST_CASE("a collected body over max_body ends as too_large", "[net][transfer]")
{
  FakeUpstream fake;
  TransferThread thread;
  auto request = transfer_chat(fake, "[[big_event=100000]]");
  request.max_body = 10000;
  const auto result = run_transfer(thread.loop(), std::move(request));
  CHECK(result.error == TransferError::too_large);
  CHECK(result.message == "the answer is larger than 10000 bytes");
  CHECK(result.body.size() <= 10000);
}

TEST_CASE("an HTTP error answer is a result with its status and body", "[net][transfer]")
{
  FakeUpstream fake;
  TransferThread thread;
  const auto result =
      run_transfer(thread.loop(), transfer_chat(fake, "[[status=503]][[retry_after=7]]"));
  CHECK(result.error == TransferError::none);
  CHECK(result.status == 503);
  CHECK(result.header("Retry-After") == "7");
  CHECK(nlohmann::json::parse(result.body).at("error").at("code") == "503");
}

TEST_CASE("a refused connection fails as connect", "[net][transfer]")
{
  TransferThread thread;
  TransferRequest request;
  request.pool = "kimi";
  request.method = "GET";
  request.url = "http://127.0.0.1:" + std::to_string(closed_port()) + "/v1/models";
  const auto result = run_transfer(thread.loop(), std::move(request));
  CHECK(result.error == TransferError::connect);
  CHECK_FALSE(result.message.empty());
  CHECK(thread.loop().stats("kimi").idle == 0);
}

TEST_CASE("HTTPS verifies against the CA file and a new connection resumes the TLS session",
          "[net][transfer][upstream_tls]")
{
  const TestCa ca;
  FakeUpstream::Options options;
  options.cert_file = ca.server_cert();
  options.key_file = ca.server_key();
  FakeUpstream fake(options);
  REQUIRE(fake.base_url().rfind("https://", 0) == 0);
  TransferThread thread(TransferLoop::Options{ca.ca_cert()});
  const auto first = run_transfer(thread.loop(), transfer_chat(fake, "tls [[close]]"));
  CHECK(reply_text(first) == "echo: tls [[close]]");
  CHECK_FALSE(first.tls_resumed);
  REQUIRE(fake.wait_for_open_connections_at_most(0, 5s));
  const auto second = run_transfer(thread.loop(), transfer_chat(fake, "again"));
  CHECK(reply_text(second) == "echo: again");
  CHECK_FALSE(second.reused);
  CHECK(second.tls_resumed);
}

TEST_CASE("HTTPS to a certificate the CA file does not vouch for fails as tls",
          "[net][transfer][upstream_tls]")
{
  const TestCa ca;
  FakeUpstream::Options options;
  options.cert_file = ca.untrusted_cert();
  options.key_file = ca.untrusted_key();
  FakeUpstream fake(options);
  TransferThread thread(TransferLoop::Options{ca.ca_cert()});
  const auto result = run_transfer(thread.loop(), transfer_chat(fake, "never"));
  CHECK(result.error == TransferError::tls);
  CHECK(fake.request_count() == 0);
}

TEST_CASE("destroying the loop ends queued and running transfers with shutdown", "[net][transfer]")
{
  FakeUpstream fake;
  std::future<TransferResult> running;
  std::future<TransferResult> queued;
  {
    TransferLoop loop; // driven by hand: no thread
    running = start_transfer(loop, transfer_chat(fake, "[[hang]]"));
    REQUIRE(eventually([&] {
      loop.dispatch();
      return fake.current_concurrency() == 1;
    }));
    queued = start_transfer(loop, transfer_chat(fake, "queued"));
    CHECK(loop.running() == 2);
  }
  CHECK(await_transfer(running).error == TransferError::shutdown);
  CHECK(await_transfer(queued).error == TransferError::shutdown);
  fake.release_hangs(); // answers into the closed connection
  CHECK(fake.wait_for_open_connections_at_most(0, 5s));
  CHECK(fake.request_count() == 1);
}

namespace {

// When and where a timer of at() ended, and how.
struct TimerEnd {
  bool fired = false;
  std::thread::id thread;
  std::chrono::steady_clock::time_point at;
};

std::future<TimerEnd>
start_timer(TransferLoop& loop,
            std::chrono::steady_clock::time_point when,
            std::stop_token stop = {})
{
  auto promise = std::make_shared<std::promise<TimerEnd>>();
  auto future = promise->get_future();
  loop.at(when, std::move(stop), [promise](bool fired) {
    promise->set_value(
        TimerEnd{fired, std::this_thread::get_id(), std::chrono::steady_clock::now()});
  });
  return future;
}

} // namespace

TEST_CASE("a timer fires once at its time on the loop's thread", "[net][transfer]")
{
  TransferThread thread;
  std::promise<std::thread::id> loop_thread;
  thread.loop().defer([&] { loop_thread.set_value(std::this_thread::get_id()); });
  const auto driver = loop_thread.get_future().get();
  CHECK(driver != std::this_thread::get_id());

  const auto start = std::chrono::steady_clock::now();
  auto later = start_timer(thread.loop(), start + 150ms);
  auto sooner = start_timer(thread.loop(), start + 50ms);
  REQUIRE(sooner.wait_for(5s) == std::future_status::ready);
  REQUIRE(later.wait_for(5s) == std::future_status::ready);
  const auto first = sooner.get();
  const auto second = later.get();
  CHECK(first.fired);
  CHECK(second.fired);
  CHECK(first.thread == driver);
  CHECK(first.at >= start + 50ms);
  CHECK(second.at >= start + 150ms);
  CHECK(first.at <= second.at);
}

TEST_CASE("a stopped timer ends at once, not fired; one stopped before it began too",
          "[net][transfer]")
{
  TransferThread thread;
  std::stop_source stop;
  auto waiting =
      start_timer(thread.loop(), std::chrono::steady_clock::now() + 30s, stop.get_token());
  CHECK(waiting.wait_for(100ms) == std::future_status::timeout);
  const auto requested = std::chrono::steady_clock::now();
  stop.request_stop();
  REQUIRE(waiting.wait_for(5s) == std::future_status::ready);
  const auto ended = waiting.get();
  CHECK_FALSE(ended.fired);
  CHECK(ended.at - requested < 100ms);

  auto already =
      start_timer(thread.loop(), std::chrono::steady_clock::now() + 30s, stop.get_token());
  REQUIRE(already.wait_for(5s) == std::future_status::ready);
  CHECK_FALSE(already.get().fired);
}

TEST_CASE("destroying the loop ends its timers, not fired", "[net][transfer]")
{
  std::future<TimerEnd> pending;
  std::future<TimerEnd> queued;
  {
    TransferLoop loop; // driven by hand: no thread
    pending = start_timer(loop, std::chrono::steady_clock::now() + 30s);
    loop.dispatch();
    queued = start_timer(loop, std::chrono::steady_clock::now() + 30s); // never dispatched
    CHECK(pending.wait_for(0s) == std::future_status::timeout);
  }
  REQUIRE(pending.wait_for(0s) == std::future_status::ready);
  REQUIRE(queued.wait_for(0s) == std::future_status::ready);
  CHECK_FALSE(pending.get().fired);
  CHECK_FALSE(queued.get().fired);
}

TEST_CASE("a loop's thread finds it through here(); other threads find none", "[net][transfer]")
{
  CHECK(TransferLoop::here() == nullptr);
  TransferThread thread;
  std::promise<TransferLoop*> seen;
  thread.loop().defer([&] { seen.set_value(TransferLoop::here()); });
  CHECK(seen.get_future().get() == &thread.loop());
  CHECK(TransferLoop::here() == nullptr);
  TransferLoop other;
  {
    const TransferLoop::Binding bound(&other);
    CHECK(TransferLoop::here() == &other);
  }
  CHECK(TransferLoop::here() == nullptr);
}

TEST_CASE("all_stats sums a pool's counters over every live loop", "[net][transfer]")
{
  FakeUpstream fake;
  auto one = std::make_unique<TransferThread>();
  TransferThread two;
  run_transfer(one->loop(), transfer_chat(fake, "a"));
  run_transfer(two.loop(), transfer_chat(fake, "b"));
  run_transfer(two.loop(), transfer_chat(fake, "c"));
  const auto all = TransferLoop::all_stats("glm");
  CHECK(all.opened == 2);
  CHECK(all.reused == 1);
  CHECK(all.idle == 2);
  CHECK(all.max_idle == one->loop().stats("glm").max_idle + two.loop().stats("glm").max_idle);
  one.reset();
  CHECK(TransferLoop::all_stats("glm").opened == 1); // a destroyed loop counts no more
}
