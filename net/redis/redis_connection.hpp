#pragma once

#include "core/config/redis_url.hpp"

#include <Poco/Redis/Array.h>
#include <Poco/Redis/Client.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace exai::net {

// One blocking Redis connection (Poco::Redis::Client) for one thread at a
// time: connects with a timeout, authenticates, selects the database, and
// turns Poco's failures into exai's error channels.
class RedisConnection {
public:
  RedisConnection(core::RedisUrl url, std::chrono::milliseconds timeout);
  ~RedisConnection();
  RedisConnection(const RedisConnection&) = delete;
  RedisConnection& operator=(const RedisConnection&) = delete;

  // (Re)connects. Throws core::SharedUnavailable when Redis cannot be
  // reached, core::Error(config_invalid) when it refuses the credentials.
  void connect();
  bool connected() const noexcept { return client_ != nullptr; }
  void disconnect() noexcept;

  // One command, one reply, connecting first when needed. A connection
  // failure disconnects and throws core::SharedUnavailable; an error reply
  // throws Poco::Redis::RedisException with the connection kept.
  Poco::Redis::RedisType::Ptr run(const Poco::Redis::Array& command);

  // EVALSHA of a script loaded at connect, falling back to EVAL when Redis
  // lost it (NOSCRIPT).
  Poco::Redis::RedisType::Ptr eval(const std::string& script,
                                   const std::string& sha,
                                   const std::vector<std::string>& keys,
                                   const std::vector<std::string>& args);

  // SCRIPT LOAD: the script's SHA1.
  std::string load_script(const std::string& script);

  const core::RedisUrl& url() const noexcept { return url_; }

private:
  const core::RedisUrl url_;
  const std::chrono::milliseconds timeout_;
  std::unique_ptr<Poco::Redis::Client> client_;
};

// Writes the AUTH (and SELECT) the URL asks for on a fresh connection, via
// `send` (one command, its reply). Throws core::Error(config_invalid) for
// refused credentials.
void
authenticate(const core::RedisUrl& url,
             const std::function<Poco::Redis::RedisType::Ptr(const Poco::Redis::Array&)>& send);

} // namespace exai::net
