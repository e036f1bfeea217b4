#pragma once

// A private redis-server for tests: on a free loopback port (found by binding
// 127.0.0.1:0 first; redis cannot take --port 0), no persistence, started and
// stopped by the test, never the system's service. Ready (answers PING) when
// start() returns.

#include <Poco/Redis/Array.h>
#include <Poco/Redis/Type.h>

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace exai::test {

class RedisServer {
public:
  // Starts at once (throws std::runtime_error when it does not answer PING
  // within 10 s, or when redis-server is not installed).
  // `extra_args` go to redis-server (e.g. {"--requirepass", "pw"}: then
  // set_password("pw") for command()).
  explicit RedisServer(std::vector<std::string> extra_args = {});
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  // Stops the server (SIGKILL: its data is gone, as a crash would lose it).
  void stop();
  // Freezes it (SIGSTOP): connections stay open, nothing is read or answered;
  // resume() (SIGCONT) thaws it.
  void pause();
  void resume();
  // Starts it again on the same port (empty).
  void start();
  bool running() const { return pid_ > 0; }

  std::uint16_t port() const { return port_; }
  // "redis://127.0.0.1:PORT"
  std::string url() const;

  // One command on a fresh connection; its reply.
  Poco::Redis::RedisType::Ptr command(const Poco::Redis::Array& cmd) const;
  // An integer reply (throws otherwise).
  std::int64_t integer(const Poco::Redis::Array& cmd) const;
  // ZCARD of `key`.
  std::int64_t zcard(const std::string& key) const;
  void set_password(std::string password) { password_ = std::move(password); }

private:
  std::uint16_t port_ = 0;
  std::vector<std::string> extra_args_;
  std::string password_;
  pid_t pid_ = -1;
};

} // namespace exai::test
