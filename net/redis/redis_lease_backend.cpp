#include "net/redis/redis_lease_backend.hpp"

#include "core/error.hpp"
#include "core/log.hpp"
#include "net/util/poco_time.hpp"

#include <Poco/Exception.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/Redis/RedisStream.h>
#include <Poco/Redis/Type.h>
#include <Poco/SHA1Engine.h>
#include <Poco/Timespan.h>

namespace exai::net {

namespace {

// Element `pos` of a script's array answer, as T.
template <typename T>
T
element_at(const Poco::Redis::RedisType::Ptr& reply, std::size_t pos)
{
  const auto* array = dynamic_cast<const Poco::Redis::Type<Poco::Redis::Array>*>(reply.get());
  if (array == nullptr || array->value().size() <= pos) {
    throw core::SharedUnavailable("unexpected script answer");
  }
  try {
    return array->value().get<T>(pos);
  } catch (const Poco::Exception& e) {
    throw core::SharedUnavailable("unexpected script answer: " + e.displayText());
  }
}

std::int64_t
int_at(const Poco::Redis::RedisType::Ptr& reply, std::size_t pos)
{
  return element_at<Poco::Int64>(reply, pos);
}

std::string
string_at(const Poco::Redis::RedisType::Ptr& reply, std::size_t pos)
{
  const auto text = element_at<Poco::Redis::BulkString>(reply, pos);
  return text.isNull() ? std::string() : text.value();
}

// What SCRIPT LOAD answers for `script`, computed here so the two connections
// never share mutable state.
std::string
sha1_hex(const std::string& script)
{
  Poco::SHA1Engine engine;
  engine.update(script);
  return Poco::DigestEngine::digestToHex(engine.digest());
}

} // namespace

const std::string&
RedisLeaseBackend::acquire_script()
{
  // KEYS: the scopes in order, then the lookup key if ARGV[3] is "1"; ARGV: ttl
  // ms, channel, lookup flag, then limit and lease per scope. Answers found
  // (0/1), the value, then granted, retry-in-ms per scope tried; stops at a
  // full one.
  static const std::string kScript = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
local scopes = #KEYS
local out = {0, ''}
if ARGV[3] == '1' then
  local found = redis.call('GET', KEYS[scopes])
  scopes = scopes - 1
  if found then
    out[1] = 1
    out[2] = found
  end
end
for i = 1, scopes do
  local key = KEYS[i]
  local limit = tonumber(ARGV[2 * i + 2])
  local purged = redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  local live = redis.call('ZCARD', key)
  if live >= limit then
    -- Releases of this scope are announced while someone may wait for it.
    redis.call('SET', key .. '#waiting', '1', 'PX', ttl + 1000)
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    out[#out + 1] = 0
    out[#out + 1] = math.max(1, tonumber(oldest[2]) - now)
    return out
  end
  redis.call('ZADD', key, now + ttl, ARGV[2 * i + 3])
  redis.call('PEXPIRE', key, ttl + 1000)
  if purged > 0 and live + 1 < limit and redis.call('EXISTS', key .. '#waiting') == 1 then
    redis.call('PUBLISH', ARGV[2], key)
  end
  out[#out + 1] = 1
  out[#out + 1] = 0
end
return out
)lua";
  return kScript;
}

const std::string&
RedisLeaseBackend::release_script()
{
  // KEYS: the scope of each lease, then the key of each write; ARGV: channel,
  // number of leases, the leases, then value and ttl ms per write. A scope's
  // release is announced once per batch, and only while `<scope>#waiting`
  // says an acquire found it full within the last TTL: with nobody waiting,
  // a release wakes no daemon's listener (at 100 daemons, every announcement
  // is 100 messages).
  static const std::string kScript = R"lua(
local leases = tonumber(ARGV[2])
local removed = 0
local announced = {}
for i = 1, leases do
  local key = KEYS[i]
  if redis.call('ZREM', key, ARGV[i + 2]) > 0 then
    removed = removed + 1
    if not announced[key] and redis.call('EXISTS', key .. '#waiting') == 1 then
      announced[key] = true
      redis.call('PUBLISH', ARGV[1], key)
    end
  end
end
for j = leases + 1, #KEYS do
  local at = leases + 3 + 2 * (j - leases - 1)
  redis.call('SET', KEYS[j], ARGV[at], 'PX', ARGV[at + 1])
end
return {removed, 0}
)lua";
  return kScript;
}

const std::string&
RedisLeaseBackend::renew_script()
{
  // KEYS[1] scope; ARGV: ttl ms, "XX" (only leases still there) or "" (re-add
  // lost ones too), lease...
  static const std::string kScript = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
for i = 3, #ARGV do
  if ARGV[2] == 'XX' then
    redis.call('ZADD', KEYS[1], 'XX', now + ttl, ARGV[i])
  else
    redis.call('ZADD', KEYS[1], now + ttl, ARGV[i])
  end
end
redis.call('PEXPIRE', KEYS[1], ttl + 1000)
return {#ARGV - 2, 0}
)lua";
  return kScript;
}

RedisLeaseBackend::RedisLeaseBackend(const core::RedisUrl& url,
                                     std::chrono::milliseconds timeout,
                                     std::string channel)
    : url_(url)
    , timeout_(timeout)
    , channel_(std::move(channel))
    , connection_(url, timeout)
    , release_connection_(url, timeout)
    , call_connection_(url, timeout)
    , acquire_sha_(sha1_hex(acquire_script()))
    , release_sha_(sha1_hex(release_script()))
    , renew_sha_(sha1_hex(renew_script()))
{
}

RedisLeaseBackend::~RedisLeaseBackend()
{
  stop_listening();
}

void
RedisLeaseBackend::connect()
{
  connection_.connect();
  // Loaded now so the first calls find them; a Redis that loses them later
  // gets them again by EVAL (RedisConnection::eval).
  for (const auto* script : {&acquire_script(), &release_script(), &renew_script()}) {
    (void)connection_.load_script(*script);
  }
}

core::SharedLeaseBackend::Answer
RedisLeaseBackend::acquire(const std::vector<Want>& wants, Millis ttl, const std::string& lookup)
{
  return acquire_on(connection_, wants, ttl, lookup);
}

std::optional<core::SharedLeaseBackend::Answer>
RedisLeaseBackend::acquire_now(const std::vector<Want>& wants,
                               Millis ttl,
                               const std::string& lookup)
{
  const std::unique_lock lock(call_mutex_, std::try_to_lock);
  if (!lock.owns_lock()) {
    return std::nullopt;
  }
  try {
    return acquire_on(call_connection_, wants, ttl, lookup);
  } catch (const core::SharedUnavailable&) {
    // This connection is used only now and then, so it may be one Redis
    // closed (restarted while the worker's reconnected): once more on a fresh
    // one. Safe: the same lease ids are added again (ZADD of a member already
    // there only moves its expiry), and the read is a read.
    return acquire_on(call_connection_, wants, ttl, lookup);
  }
}

core::SharedLeaseBackend::Answer
RedisLeaseBackend::acquire_on(RedisConnection& connection,
                              const std::vector<Want>& wants,
                              Millis ttl,
                              const std::string& lookup)
{
  std::vector<std::string> keys;
  std::vector<std::string> args{std::to_string(ttl.count()), channel_, lookup.empty() ? "0" : "1"};
  for (const auto& want : wants) {
    keys.push_back(want.key);
    args.push_back(std::to_string(want.limit));
    args.push_back(want.lease);
  }
  if (!lookup.empty()) {
    keys.push_back(lookup);
  }
  const auto reply = connection.eval(acquire_script(), acquire_sha_, keys, args);
  Answer answer;
  if (int_at(reply, 0) == 1) {
    answer.found = string_at(reply, 1);
  }
  for (std::size_t i = 0; i < wants.size(); ++i) {
    Attempt attempt;
    attempt.granted = int_at(reply, 2 + 2 * i) == 1;
    attempt.retry_in = Millis(int_at(reply, 3 + 2 * i));
    answer.attempts.push_back(attempt);
    if (!attempt.granted) {
      break;
    }
  }
  return answer;
}

void
RedisLeaseBackend::release(const std::vector<Held>& leases, const std::vector<Write>& writes)
{
  std::vector<std::string> keys;
  std::vector<std::string> args{channel_, std::to_string(leases.size())};
  for (const auto& held : leases) {
    keys.push_back(held.key);
    args.push_back(held.lease);
  }
  for (const auto& write : writes) {
    keys.push_back(write.key);
    args.push_back(write.value);
    args.push_back(std::to_string(std::max<std::int64_t>(1, write.ttl.count())));
  }
  try {
    (void)release_connection_.eval(release_script(), release_sha_, keys, args);
  } catch (const core::SharedUnavailable&) {
    // The connection may be one Redis closed (a restart while we were
    // degraded): once more on a fresh one. Safe: removing a lease twice is
    // removing it once, and a write is the same write.
    (void)release_connection_.eval(release_script(), release_sha_, keys, args);
  }
}

void
RedisLeaseBackend::renew(const std::string& key,
                         const std::vector<std::string>& leases,
                         Millis ttl,
                         bool re_add)
{
  std::vector<std::string> args;
  args.reserve(leases.size() + 2);
  args.push_back(std::to_string(ttl.count()));
  args.emplace_back(re_add ? "" : "XX");
  args.insert(args.end(), leases.begin(), leases.end());
  (void)connection_.eval(renew_script(), renew_sha_, {key}, args);
}

void
RedisLeaseBackend::listen(std::function<void(const std::string& key)> on_release)
{
  listener_ =
      std::thread([this, on_release = std::move(on_release)] { subscribe_loop(on_release); });
}

void
RedisLeaseBackend::stop_listening() noexcept
{
  {
    const std::lock_guard lock(mutex_);
    stop_ = true;
  }
  stopped_.notify_all();
  if (listener_.joinable()) {
    listener_.join();
  }
}

void
RedisLeaseBackend::subscribe_loop(const std::function<void(const std::string& key)>& on_release)
{
  const auto stopping = [this] {
    const std::lock_guard lock(mutex_);
    return stop_;
  };
  const auto poll_step = std::chrono::milliseconds(200);
  bool subscribed_before = false;
  bool logged = false;
  while (!stopping()) {
    try {
      Poco::Net::StreamSocket socket;
      socket.connect(Poco::Net::SocketAddress(url_.host, url_.port), to_timespan(timeout_));
      socket.setReceiveTimeout(to_timespan(timeout_));
      socket.setNoDelay(true);
      Poco::Redis::RedisOutputStream out(socket);
      Poco::Redis::RedisInputStream in(socket);
      const auto read_reply = [&in] {
        Poco::Redis::RedisType::Ptr reply =
            Poco::Redis::RedisType::createRedisType(static_cast<char>(in.get()));
        if (reply.isNull()) {
          throw Poco::IOException("connection closed");
        }
        reply->read(in);
        return reply;
      };
      const auto send = [&](const Poco::Redis::Array& command) {
        out << command.toString();
        out.flush();
        return read_reply();
      };
      authenticate(url_, send);
      Poco::Redis::Array subscribe;
      subscribe << "SUBSCRIBE" << channel_;
      if (send(subscribe)->isError()) {
        throw Poco::IOException("SUBSCRIBE refused");
      }
      if (subscribed_before) {
        on_release(""); // releases announced while we were away are lost: look again
      }
      subscribed_before = true;
      logged = false;
      while (!stopping()) {
        if (in.rdbuf()->in_avail() <= 0 &&
            !socket.poll(to_timespan(poll_step),
                         Poco::Net::Socket::SELECT_READ | Poco::Net::Socket::SELECT_ERROR)) {
          continue;
        }
        const auto message = read_reply();
        const auto* array =
            dynamic_cast<const Poco::Redis::Type<Poco::Redis::Array>*>(message.get());
        if (array == nullptr || array->value().size() < 3) {
          continue;
        }
        const auto payload = array->value().get<Poco::Redis::BulkString>(2);
        if (!payload.isNull()) {
          on_release(payload.value());
        }
      }
    } catch (const std::exception& e) {
      if (!logged) {
        core::log::get("net")->debug("redis subscription lost error=\"{}\"", e.what());
        logged = true;
      }
    }
    // Backoff before the next attempt; stop ends it at once.
    std::unique_lock lock(mutex_);
    stopped_.wait_for(lock, std::chrono::milliseconds(250), [this] { return stop_; });
  }
}

} // namespace exai::net
