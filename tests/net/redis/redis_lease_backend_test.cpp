#include "core/capacity/shared_capacity.hpp"
#include "core/config/redis_url.hpp"
#include "core/error.hpp"
#include "net/redis/redis_connection.hpp"
#include "net/redis/redis_lease_backend.hpp"
#include "tests/support/eventually.hpp"
#include "tests/support/redis_server.hpp"

#include <catch2/catch.hpp>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <set>
#include <thread>

using namespace exai::core;
using namespace exai::net;
using namespace exai::test;
using namespace std::chrono_literals;

namespace {

RedisUrl
url_of(const RedisServer& server, const std::string& password = {})
{
  std::string why;
  std::string text = "redis://";
  if (!password.empty()) {
    text.append(":").append(password).append("@");
  }
  text.append("127.0.0.1:").append(std::to_string(server.port()));
  auto url = parse_redis_url(text, why);
  REQUIRE(url);
  return *url;
}

constexpr const char* kChannel = "test:cap:released";

SharedLeaseBackend::Attempt
acquire_one(RedisLeaseBackend& backend,
            const std::string& key,
            std::size_t limit,
            const std::string& lease,
            std::chrono::milliseconds ttl)
{
  const auto attempts = backend.acquire({{key, limit, lease}}, ttl, "").attempts;
  REQUIRE(attempts.size() == 1);
  return attempts.front();
}

void
release_one(RedisLeaseBackend& backend, const std::string& key, const std::string& lease)
{
  backend.release({{key, lease}}, {});
}

// A private Redis and a backend connected to it.
struct Connected {
  RedisServer redis;
  RedisLeaseBackend backend{url_of(redis), 1000ms, kChannel};
  Connected() { backend.connect(); }
};

} // namespace

TEST_CASE("one acquire takes the leases of several scopes in order and stops at a full one",
          "[net][redis]")
{
  Connected c;
  REQUIRE(acquire_one(c.backend, "p", 1, "held", 10000ms).granted);
  // Both free: both granted in one round trip.
  auto both = c.backend.acquire({{"g", 4, "g1"}, {"q", 1, "q1"}}, 10000ms, "").attempts;
  REQUIRE(both.size() == 2);
  CHECK(both[0].granted);
  CHECK(both[1].granted);
  // The second scope full: the first is granted, the second says when to retry.
  auto partial = c.backend.acquire({{"g", 4, "g2"}, {"p", 1, "p2"}}, 10000ms, "").attempts;
  REQUIRE(partial.size() == 2);
  CHECK(partial[0].granted);
  CHECK_FALSE(partial[1].granted);
  CHECK(partial[1].retry_in > 9000ms);
  // The first scope full: nothing further is tried.
  REQUIRE(acquire_one(c.backend, "g", 4, "g3", 10000ms).granted);
  REQUIRE(acquire_one(c.backend, "g", 4, "g4", 10000ms).granted);
  auto none = c.backend.acquire({{"g", 4, "g5"}, {"q", 2, "q2"}}, 10000ms, "").attempts;
  REQUIRE(none.size() == 1);
  CHECK_FALSE(none[0].granted);
  CHECK(c.redis.zcard("q") == 1);
  // One release drops leases of several scopes.
  c.backend.release({{"g", "g1"}, {"g", "g2"}, {"q", "q1"}, {"p", "held"}, {"g", "gone"}}, {});
  CHECK(c.redis.zcard("g") == 2);
  CHECK(c.redis.zcard("q") == 0);
  CHECK(c.redis.zcard("p") == 0);
}

TEST_CASE("the acquire script grants up to the limit, then names when the oldest lease expires",
          "[net][redis]")
{
  Connected c;
  RedisServer& redis = c.redis;
  RedisLeaseBackend& backend = c.backend;
  CHECK(acquire_one(backend, "k", 2, "a", 10000ms).granted);
  CHECK(acquire_one(backend, "k", 2, "b", 10000ms).granted);
  const auto full = acquire_one(backend, "k", 2, "c", 10000ms);
  CHECK_FALSE(full.granted);
  CHECK(full.retry_in > 9000ms);
  CHECK(full.retry_in <= 10000ms);
  CHECK(redis.zcard("k") == 2);
  release_one(backend, "k", "a");
  CHECK(acquire_one(backend, "k", 2, "c", 10000ms).granted);
  release_one(backend, "k", "b");
  release_one(backend, "k", "c");
  release_one(backend, "k", "c"); // twice: nothing more happens
  CHECK(redis.zcard("k") == 0);
}

TEST_CASE("expired leases stop counting: a dead holder strands nothing past the TTL",
          "[net][redis]")
{
  RedisServer redis;
  RedisLeaseBackend backend(url_of(redis), 1000ms, kChannel);
  backend.connect();
  REQUIRE(acquire_one(backend, "k", 1, "dead", 300ms).granted); // never renewed, never released
  const auto started = std::chrono::steady_clock::now();
  auto attempt = acquire_one(backend, "k", 1, "next", 10000ms);
  CHECK_FALSE(attempt.granted);
  CHECK(attempt.retry_in <= 300ms);
  // The server's own hint says when to try again.
  while (!attempt.granted) {
    REQUIRE(std::chrono::steady_clock::now() - started < 5s);
    std::this_thread::sleep_for(attempt.retry_in);
    attempt = acquire_one(backend, "k", 1, "next", 10000ms);
  }
  CHECK(std::chrono::steady_clock::now() - started < 2s);
  CHECK(redis.zcard("k") == 1);
  release_one(backend, "k", "next");
  CHECK(redis.zcard("k") == 0);
}

TEST_CASE("renew extends held leases; only after an outage does it re-add lost ones",
          "[net][redis]")
{
  RedisServer redis;
  RedisLeaseBackend backend(url_of(redis), 1000ms, kChannel);
  backend.connect();
  REQUIRE(acquire_one(backend, "k", 5, "a", 500ms).granted);
  REQUIRE(acquire_one(backend, "k", 5, "gone", 60000ms).granted);
  // A lease released meanwhile (by the releaser's connection) is not brought back.
  release_one(backend, "k", "gone");
  backend.renew("k", {"a", "gone"}, 60000ms, false);
  CHECK(redis.zcard("k") == 1);
  Poco::Redis::Array pttl;
  pttl << "PTTL"
       << "k";
  CHECK(redis.integer(pttl) > 50000);
  Poco::Redis::Array del;
  del << "DEL"
      << "k";
  redis.command(del);
  backend.renew("k", {"a", "b"}, 60000ms, true); // a restarted, empty Redis
  CHECK(redis.zcard("k") == 2);
}

TEST_CASE("a lost script is sent again (EVAL after NOSCRIPT)", "[net][redis]")
{
  RedisServer redis;
  RedisLeaseBackend backend(url_of(redis), 1000ms, kChannel);
  backend.connect();
  Poco::Redis::Array flush;
  flush << "SCRIPT"
        << "FLUSH";
  redis.command(flush);
  CHECK(acquire_one(backend, "k", 1, "a", 10000ms).granted);
  release_one(backend, "k", "a");
  CHECK(redis.zcard("k") == 0);
}

TEST_CASE("a release is announced to every listener while someone waits for the scope",
          "[net][redis]")
{
  RedisServer redis;
  RedisLeaseBackend first(url_of(redis), 1000ms, kChannel);
  RedisLeaseBackend second(url_of(redis), 1000ms, kChannel);
  first.connect();
  std::mutex mutex;
  std::set<std::string> heard; // guarded by mutex
  second.listen([&](const std::string& key) {
    const std::lock_guard lock(mutex);
    heard.insert(key);
  });
  const auto heard_key = [&](const std::string& key) {
    const std::lock_guard lock(mutex);
    return heard.count(key) == 1;
  };
  // A scope found full is marked waiting; its release is announced. (The
  // subscription is up once a publish reaches it.)
  REQUIRE(eventually(
      [&] {
        (void)acquire_one(first, "k", 1, "a", 10000ms);
        CHECK_FALSE(acquire_one(first, "k", 1, "b", 10000ms).granted);
        release_one(first, "k", "a");
        return heard_key("k");
      },
      5000ms));
  Poco::Redis::Array marker_ttl;
  marker_ttl << "PTTL"
             << "k#waiting";
  CHECK(redis.integer(marker_ttl) > 5000); // about one lease TTL

  // A scope nobody waited for: its release wakes nobody. Announcements arrive
  // in order, so once the later one is heard the earlier one would have been.
  REQUIRE(acquire_one(first, "quiet", 1, "q", 10000ms).granted);
  release_one(first, "quiet", "q");
  REQUIRE(acquire_one(first, "k", 1, "c", 10000ms).granted);
  CHECK_FALSE(acquire_one(first, "k", 1, "d", 10000ms).granted);
  {
    const std::lock_guard lock(mutex);
    heard.clear();
  }
  release_one(first, "k", "c");
  REQUIRE(eventually([&] { return heard_key("k"); }, 5000ms));
  CHECK_FALSE(heard_key("quiet"));
  second.stop_listening();
}

TEST_CASE("unreachable Redis is SharedUnavailable; refused credentials are a config error",
          "[net][redis]")
{
  {
    RedisServer redis;
    const RedisUrl url = url_of(redis);
    redis.stop();
    RedisLeaseBackend backend(url, 500ms, kChannel);
    CHECK_THROWS_AS(backend.connect(), SharedUnavailable);
  }
  RedisServer redis({"--requirepass", "right-password"});
  {
    RedisLeaseBackend backend(url_of(redis, "wrong-password"), 1000ms, kChannel);
    try {
      backend.connect();
      FAIL("connected with a wrong password");
    } catch (const Error& e) {
      CHECK(e.code() == Errc::config_invalid);
      CHECK_THAT(e.what(), Catch::Contains("EXAI_REDIS_URL"));
      CHECK_THAT(e.what(), !Catch::Contains("wrong-password"));
    }
  }
  {
    RedisLeaseBackend backend(url_of(redis), 1000ms, kChannel);
    CHECK_THROWS_AS(backend.connect(), Error);
  }
  RedisLeaseBackend backend(url_of(redis, "right-password"), 1000ms, kChannel);
  backend.connect();
  CHECK(acquire_one(backend, "k", 1, "a", 10000ms).granted);
}

namespace {

SharedCapacityOptions
options(const std::string& id, std::chrono::milliseconds ttl = 10000ms)
{
  SharedCapacityOptions o;
  o.daemon_id = id;
  o.lease_ttl = ttl;
  o.key_prefix = "test:cap:";
  o.retry_interval = 100ms;
  return o;
}

} // namespace

TEST_CASE("two daemons share one limit; a release wakes the other daemon's waiter at once",
          "[net][redis]")
{
  RedisServer redis;
  RedisLeaseBackend backend_a(url_of(redis), 1000ms, kChannel);
  RedisLeaseBackend backend_b(url_of(redis), 1000ms, kChannel);
  SharedCapacity a(backend_a, options("a", 30000ms));
  SharedCapacity b(backend_b, options("b", 30000ms));
  PermitSource& gate_a = a.gate("provider:glm", 2);
  PermitSource& gate_b = b.gate("provider:glm", 2);
  auto p1 = gate_a.acquire_until(std::chrono::steady_clock::now() + 5s, {});
  auto p2 = gate_b.acquire_until(std::chrono::steady_clock::now() + 5s, {});
  REQUIRE(p1);
  REQUIRE(p2);
  CHECK(redis.zcard("test:cap:provider:glm") == 2);
  // Full across both: a third times out.
  AcquireStatus status = AcquireStatus::acquired;
  CHECK_FALSE(gate_a.acquire_until(std::chrono::steady_clock::now() + 200ms, {}, &status));
  CHECK(status == AcquireStatus::timed_out);
  // A waiter of A gets B's unit when B releases it, long before the 30 s TTL.
  std::optional<Permit> got;
  std::thread waiter(
      [&] { got = gate_a.acquire_until(std::chrono::steady_clock::now() + 10s, {}); });
  REQUIRE(eventually([&] { return gate_a.stats().waiting == 1; }, 5000ms));
  const auto released = std::chrono::steady_clock::now();
  p2.reset();
  waiter.join();
  CHECK(got);
  CHECK(std::chrono::steady_clock::now() - released < 2s);
  got.reset();
  p1.reset();
  CHECK(eventually([&] { return redis.zcard("test:cap:provider:glm") == 0; }, 5000ms));
  CHECK(a.stats().round_trips > 0);
}

TEST_CASE("a cancelled wait for a shared scope ends at once and holds nothing", "[net][redis]")
{
  RedisServer redis;
  RedisLeaseBackend backend(url_of(redis), 1000ms, kChannel);
  SharedCapacity shared(backend, options("a"));
  PermitSource& gate = shared.gate("global", 1);
  auto held = gate.acquire_until(std::chrono::steady_clock::now() + 5s, {});
  REQUIRE(held);
  std::stop_source stop;
  AcquireStatus status = AcquireStatus::acquired;
  std::thread waiter([&] {
    (void)gate.acquire_until(std::chrono::steady_clock::now() + 30s, stop.get_token(), &status);
  });
  REQUIRE(eventually([&] { return gate.stats().waiting == 1; }, 5000ms));
  stop.request_stop();
  waiter.join();
  CHECK(status == AcquireStatus::cancelled);
  CHECK(gate.stats().waiting == 0);
  held.reset();
  CHECK(eventually([&] { return redis.zcard("test:cap:global") == 0; }, 5000ms));
}

TEST_CASE("Redis down: local shares answer, health degraded; back: shared again, nothing leaked",
          "[net][redis]")
{
  RedisServer redis;
  RedisLeaseBackend backend(url_of(redis), 300ms, kChannel);
  SharedCapacity shared(backend, options("a", 2000ms));
  PermitSource& gate = shared.gate("global", 4);
  auto before = gate.acquire_until(std::chrono::steady_clock::now() + 5s, {});
  REQUIRE(before);
  REQUIRE(shared.stats().shared);
  redis.stop();
  // Local share: ceil(4 x 0.5) = 2 units while Redis is away.
  std::vector<Permit> local;
  for (int i = 0; i < 2; ++i) {
    auto p = gate.acquire_until(std::chrono::steady_clock::now() + 5s, {});
    REQUIRE(p);
    local.push_back(std::move(*p));
  }
  CHECK_FALSE(shared.stats().shared);
  CHECK_THAT(shared.stats().reason, Catch::Contains("redis unreachable"));
  CHECK(shared.stats().fallbacks == 1);
  CHECK_FALSE(gate.acquire_until(std::chrono::steady_clock::now() + 100ms, {}));
  redis.start();
  REQUIRE(eventually([&] { return shared.stats().shared; }, 5000ms));
  // The lease held across the outage was re-added to the new, empty Redis.
  CHECK(redis.zcard("test:cap:global") == 1);
  auto after = gate.acquire_until(std::chrono::steady_clock::now() + 5s, {});
  REQUIRE(after);
  CHECK(redis.zcard("test:cap:global") == 2);
  local.clear();
  after.reset();
  before.reset();
  CHECK(eventually([&] { return redis.zcard("test:cap:global") == 0; }, 5000ms));
  CHECK(gate.stats().in_use == 0);
  CHECK(shared.stats().leases_held == 0);
}

TEST_CASE("Redis unreachable with EXAI_REDIS_FAILURE=refuse grants nothing", "[net][redis]")
{
  RedisServer redis;
  const RedisUrl url = url_of(redis);
  redis.stop();
  RedisLeaseBackend backend(url, 300ms, kChannel);
  SharedCapacityOptions o = options("a");
  o.failure = SharedFailureMode::refuse;
  SharedCapacity shared(backend, o);
  PermitSource& gate = shared.gate("global", 4);
  CHECK_FALSE(shared.stats().shared);
  AcquireStatus status = AcquireStatus::acquired;
  const auto asked = std::chrono::steady_clock::now();
  CHECK_FALSE(gate.acquire_until(asked + 5s, {}, &status));
  CHECK(status == AcquireStatus::refused);
  CHECK(std::chrono::steady_clock::now() - asked < 2s); // at once, not at the deadline
}

TEST_CASE("an acquire reads a key in the same round trip; a release batch writes values",
          "[net][redis]")
{
  Connected c;
  // Written with a release, read back by an acquire whatever the scope says.
  c.backend.release({}, {{"result:1", "the stored answer", 60000ms}});
  const auto found = c.backend.acquire({{"g", 1, "a"}}, 10000ms, "result:1");
  REQUIRE(found.found);
  CHECK(*found.found == "the stored answer");
  REQUIRE(found.attempts.size() == 1);
  CHECK(found.attempts[0].granted);
  const auto full = c.backend.acquire({{"g", 1, "b"}}, 10000ms, "result:1");
  CHECK(full.found == found.found);
  REQUIRE(full.attempts.size() == 1);
  CHECK_FALSE(full.attempts[0].granted);
  const auto absent = c.backend.acquire({{"h", 1, "c"}}, 10000ms, "result:none");
  CHECK_FALSE(absent.found);
  CHECK(absent.attempts.at(0).granted);
  // Leases and writes in one batch; the value expires with its TTL.
  c.backend.release({{"g", "a"}, {"h", "c"}}, {{"result:2", "short", 1ms}});
  CHECK(c.redis.zcard("g") == 0);
  CHECK(c.redis.zcard("h") == 0);
  CHECK(eventually([&] { return !c.backend.acquire({}, 10000ms, "result:2").found; }, 5000ms));
}

namespace {

// TCP_NODELAY of each socket of this process connected to `port` on loopback.
std::vector<int>
no_delay_flags(std::uint16_t port)
{
  std::vector<int> flags;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    const int fd = std::stoi(entry.path().filename().string());
    sockaddr_in peer{};
    socklen_t length = sizeof(peer);
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &length) != 0 ||
        peer.sin_family != AF_INET || ntohs(peer.sin_port) != port) {
      continue;
    }
    int on = 0;
    socklen_t size = sizeof(on);
    REQUIRE(::getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, &size) == 0);
    flags.push_back(on);
  }
  return flags;
}

} // namespace

TEST_CASE("a Redis that stops reading fails a command within the timeout, not when TCP gives up",
          "[net][redis]")
{
  RedisServer redis;
  exai::net::RedisConnection connection(url_of(redis), 500ms);
  connection.connect();
  redis.pause(); // connected, reading nothing: the socket buffers fill, then sends block
  // Thawed after 30 s whatever happens: a blocked send then ends the test late, not never.
  std::mutex mutex;
  std::condition_variable changed;
  bool done = false;
  std::thread watchdog([&] {
    std::unique_lock lock(mutex);
    changed.wait_for(lock, 30s, [&] { return done; });
    redis.resume();
  });
  Poco::Redis::Array set;
  set << "SET"
      << "k" << std::string(std::size_t{16} << 20U, 'v'); // more than the buffers hold
  const auto started = std::chrono::steady_clock::now();
  CHECK_THROWS_AS(connection.run(set), SharedUnavailable);
  const auto took = std::chrono::steady_clock::now() - started;
  {
    const std::lock_guard lock(mutex);
    done = true;
  }
  changed.notify_all();
  watchdog.join();
  INFO("took " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms");
  CHECK(took < 15s); // a few send timeouts (the kernel takes the odd piece meanwhile)
}

TEST_CASE("commands longer than Poco's 1 KB buffer leave at once (TCP_NODELAY)", "[net][redis]")
{
  // With Nagle's algorithm on, the last piece of such a command waited for
  // Redis's delayed ACK: ~40 ms for every release batch that carried a result.
  Connected c;
  const std::string big(16384, 'r');
  const auto started = std::chrono::steady_clock::now();
  for (int i = 0; i < 20; ++i) {
    REQUIRE(acquire_one(c.backend, "k", 1, "a", 10000ms).granted);
    c.backend.release({{"k", "a"}}, {{"result:" + std::to_string(i), big, 60000ms}});
  }
  const auto took = std::chrono::steady_clock::now() - started;
  const auto flags = no_delay_flags(c.redis.port());
  REQUIRE(flags.size() >= 2); // the acquire and the release connections
  for (const int on : flags) {
    CHECK(on == 1);
  }
  CHECK(took < 600ms); // 20 batches; about 20 x 40 ms with the stall
}
