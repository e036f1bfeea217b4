#include "net/redis/redis_store.hpp"

#include "core/capacity/shared_capacity.hpp"
#include "core/log.hpp"

#include <Poco/Exception.h>
#include <Poco/Redis/Type.h>

#include <algorithm>

namespace exai::net {

namespace {
constexpr std::size_t kMaxIdle = 8;
constexpr std::chrono::seconds kPause{1};
} // namespace

RedisStore::RedisStore(const core::RedisUrl& url, std::chrono::milliseconds timeout)
    : url_(url)
    , timeout_(timeout)
{
}

std::unique_ptr<RedisConnection>
RedisStore::take()
{
  const std::lock_guard lock(mutex_);
  if (Clock::now() < down_until_) {
    return nullptr;
  }
  if (!idle_.empty()) {
    auto connection = std::move(idle_.back());
    idle_.pop_back();
    return connection;
  }
  return std::make_unique<RedisConnection>(url_, timeout_);
}

void
RedisStore::give_back(std::unique_ptr<RedisConnection> connection, bool failed)
{
  const std::lock_guard lock(mutex_);
  if (failed) {
    down_until_ = Clock::now() + kPause;
    return;
  }
  if (idle_.size() < kMaxIdle) {
    idle_.push_back(std::move(connection));
  }
}

std::optional<std::string>
RedisStore::get(const std::string& key)
{
  auto connection = take();
  if (!connection) {
    return std::nullopt;
  }
  std::optional<std::string> value;
  bool failed = false;
  try {
    Poco::Redis::Array command;
    command << "GET" << key;
    ++round_trips_;
    const auto reply = connection->run(command);
    const auto* text = dynamic_cast<const Poco::Redis::Type<Poco::Redis::BulkString>*>(reply.get());
    if (text != nullptr && !text->value().isNull()) {
      value = text->value().value();
    }
  } catch (const std::exception& e) {
    core::log::get("net")->debug("redis store get failed error=\"{}\"", e.what());
    failed = true;
  }
  give_back(std::move(connection), failed);
  return value;
}

void
RedisStore::put(const std::string& key, const std::string& value, std::chrono::milliseconds ttl)
{
  auto connection = take();
  if (!connection) {
    return;
  }
  bool failed = false;
  try {
    Poco::Redis::Array command;
    command << "SET" << key << value << "PX"
            << std::to_string(std::max<std::int64_t>(1, ttl.count()));
    ++round_trips_;
    (void)connection->run(command);
  } catch (const std::exception& e) {
    core::log::get("net")->debug("redis store put failed error=\"{}\"", e.what());
    failed = true;
  }
  give_back(std::move(connection), failed);
}

} // namespace exai::net
