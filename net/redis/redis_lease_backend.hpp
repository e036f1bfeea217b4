#pragma once

#include "core/capacity/shared_capacity.hpp"
#include "core/config/redis_url.hpp"
#include "net/redis/redis_connection.hpp"

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace exai::net {

// The shared capacity leases in Redis (core::SharedLeaseBackend).
//
// A scope is a sorted set: member = lease id, score = expiry in Redis's own
// clock (ms, from TIME inside the script, so daemons' clocks never matter).
// Three Lua scripts, each one atomic round trip (EVALSHA, EVAL when Redis lost
// the script):
// - acquire: for each scope in turn (global, then the provider), drop expired
//   members; add the lease if fewer than `limit` remain; else mark the scope
//   `<scope>#waiting` (for one TTL), stop and answer when the oldest expires;
// - release: remove the leases and PUBLISH each scope on `<prefix>released`,
//   once per batch and only while it is marked waiting (nobody listens for a
//   scope that was never full, and every announcement wakes every daemon);
// - renew: set the given leases' expiry to now + TTL (re-adding lost ones
//   only when asked: after an outage, never for a lease the releaser dropped).
// The key itself expires one second after its newest lease, so an abandoned
// scope leaves nothing behind. A second connection SUBSCRIBEs to the release
// channel on its own thread.
class RedisLeaseBackend final : public core::SharedLeaseBackend {
public:
  RedisLeaseBackend(const core::RedisUrl& url,
                    std::chrono::milliseconds timeout,
                    std::string channel);
  ~RedisLeaseBackend() override;

  void connect() override;
  Answer acquire(const std::vector<Want>& wants, Millis ttl, const std::string& lookup) override;
  std::optional<Answer>
  acquire_now(const std::vector<Want>& wants, Millis ttl, const std::string& lookup) override;
  void release(const std::vector<Held>& leases, const std::vector<Write>& writes) override;
  void renew(const std::string& key,
             const std::vector<std::string>& leases,
             Millis ttl,
             bool re_add) override;
  void listen(std::function<void(const std::string& key)> on_release) override;
  void stop_listening() noexcept override;

  // The Lua sources, for tests that drive them directly.
  static const std::string& acquire_script();
  static const std::string& release_script();
  static const std::string& renew_script();

private:
  void subscribe_loop(const std::function<void(const std::string& key)>& on_release);
  Answer acquire_on(RedisConnection& connection,
                    const std::vector<Want>& wants,
                    Millis ttl,
                    const std::string& lookup);

  const core::RedisUrl url_;
  const std::chrono::milliseconds timeout_;
  const std::string channel_;
  RedisConnection connection_;         // the worker's: connect, acquire, renew
  RedisConnection release_connection_; // the releaser's (connects on first use)
  std::mutex call_mutex_;              // one call thread at a time on call_connection_
  RedisConnection call_connection_;    // call threads' (connects on first use)
  const std::string acquire_sha_;
  const std::string release_sha_;
  const std::string renew_sha_;
  std::mutex mutex_;
  std::condition_variable stopped_;
  bool stop_ = false; // guarded by mutex_
  std::thread listener_;
};

} // namespace exai::net
