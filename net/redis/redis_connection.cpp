#include "net/redis/redis_connection.hpp"

#include "core/capacity/shared_capacity.hpp"
#include "core/error.hpp"
#include "net/util/poco_time.hpp"

#include <Poco/Exception.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/Redis/Error.h>
#include <Poco/Redis/Exception.h>
#include <Poco/Redis/Type.h>
#include <Poco/Timespan.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <charconv>
#include <chrono>
#include <filesystem>

namespace exai::net {

namespace {

std::string
error_text(const Poco::Redis::RedisType::Ptr& reply)
{
  const auto* error = dynamic_cast<const Poco::Redis::Type<Poco::Redis::Error>*>(reply.get());
  return error != nullptr ? error->value().getMessage() : std::string("error");
}

// Poco::Redis (1.12) writes a command in 1 KB pieces and offers no way to its
// socket: with Nagle's algorithm on, the last piece of a longer command (a
// release batch carrying results) waits for Redis's delayed ACK, ~40 ms. Nor
// does it offer a send timeout: a Redis that stops reading (stopped, or
// behind a black hole) blocked a command once the socket buffers filled,
// until TCP gave up, ~15 minutes. So every socket of this process connected
// to Redis's address gets TCP_NODELAY and a send timeout of `timeout`: all of
// them are ours, and all of them want both.
void
tune_sockets_to(const Poco::Net::SocketAddress& redis, std::chrono::milliseconds timeout)
{
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(timeout);
  const timeval send_timeout{
      static_cast<time_t>(seconds.count()),
      static_cast<suseconds_t>(
          std::chrono::duration_cast<std::chrono::microseconds>(timeout - seconds).count())};
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd", error)) {
    int fd = -1;
    const std::string name = entry.path().filename().string();
    const auto parsed = std::from_chars(name.data(), name.data() + name.size(), fd);
    if (parsed.ec != std::errc() || fd < 0) {
      continue;
    }
    sockaddr_storage peer{};
    socklen_t length = sizeof(peer);
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &length) != 0 ||
        (peer.ss_family != AF_INET && peer.ss_family != AF_INET6)) {
      continue;
    }
    if (Poco::Net::SocketAddress(reinterpret_cast<const sockaddr*>(&peer), length) == redis) {
      const int on = 1;
      (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
      (void)::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof(send_timeout));
    }
  }
}

} // namespace

void
authenticate(const core::RedisUrl& url,
             const std::function<Poco::Redis::RedisType::Ptr(const Poco::Redis::Array&)>& send)
{
  if (!url.password.empty()) {
    Poco::Redis::Array auth;
    auth << "AUTH";
    if (!url.user.empty()) {
      auth << url.user;
    }
    auth << url.password;
    const auto reply = send(auth);
    if (reply->isError()) {
      throw core::Error(core::Errc::config_invalid,
                        "EXAI_REDIS_URL: Redis refused the credentials: " + error_text(reply));
    }
  }
  if (url.db != 0) {
    Poco::Redis::Array select;
    select << "SELECT" << std::to_string(url.db);
    const auto reply = send(select);
    if (reply->isError()) {
      throw core::Error(core::Errc::config_invalid,
                        "EXAI_REDIS_URL: Redis refused database " + std::to_string(url.db) + ": " +
                            error_text(reply));
    }
  }
}

RedisConnection::RedisConnection(core::RedisUrl url, std::chrono::milliseconds timeout)
    : url_(std::move(url))
    , timeout_(timeout)
{
}

RedisConnection::~RedisConnection()
{
  disconnect();
}

void
RedisConnection::disconnect() noexcept
{
  if (client_ != nullptr) {
    try {
      client_->disconnect();
    } catch (...) {
      // closing a broken socket: nothing to report
    }
    client_.reset();
  }
}

void
RedisConnection::connect()
{
  disconnect();
  auto client = std::make_unique<Poco::Redis::Client>();
  try {
    client->connect(url_.host, url_.port, to_timespan(timeout_));
    tune_sockets_to(client->address(), timeout_);
    client->setReceiveTimeout(to_timespan(timeout_));
    authenticate(url_,
                 [&](const Poco::Redis::Array& command) { return client->sendCommand(command); });
    Poco::Redis::Array ping;
    ping << "PING";
    const auto reply = client->sendCommand(ping);
    if (reply->isError()) {
      const std::string text = error_text(reply);
      if (text.rfind("NOAUTH", 0) == 0 || text.rfind("WRONGPASS", 0) == 0) {
        throw core::Error(core::Errc::config_invalid,
                          "EXAI_REDIS_URL: Redis wants credentials: " + text);
      }
      throw core::SharedUnavailable(text);
    }
  } catch (const Poco::Exception& e) {
    throw core::SharedUnavailable(url_.host + ":" + std::to_string(url_.port) + ": " +
                                  e.displayText());
  }
  client_ = std::move(client);
}

Poco::Redis::RedisType::Ptr
RedisConnection::run(const Poco::Redis::Array& command)
{
  if (client_ == nullptr) {
    connect();
  }
  try {
    return client_->sendCommand(command);
  } catch (const Poco::Exception& e) {
    disconnect();
    throw core::SharedUnavailable(e.displayText());
  }
}

std::string
RedisConnection::load_script(const std::string& script)
{
  Poco::Redis::Array command;
  command << "SCRIPT"
          << "LOAD" << script;
  const auto reply = run(command);
  const auto* sha = dynamic_cast<const Poco::Redis::Type<Poco::Redis::BulkString>*>(reply.get());
  if (reply->isError() || sha == nullptr || sha->value().isNull()) {
    throw core::SharedUnavailable("SCRIPT LOAD failed: " + error_text(reply));
  }
  return sha->value().value();
}

Poco::Redis::RedisType::Ptr
RedisConnection::eval(const std::string& script,
                      const std::string& sha,
                      const std::vector<std::string>& keys,
                      const std::vector<std::string>& args)
{
  const auto build = [&](const char* verb, const std::string& body) {
    Poco::Redis::Array command;
    command << verb << body << std::to_string(keys.size());
    for (const auto& key : keys) {
      command << key;
    }
    for (const auto& arg : args) {
      command << arg;
    }
    return command;
  };
  auto reply = run(build("EVALSHA", sha));
  if (reply->isError() && error_text(reply).rfind("NOSCRIPT", 0) == 0) {
    reply = run(build("EVAL", script)); // Redis restarted or flushed its scripts
  }
  if (reply->isError()) {
    throw core::SharedUnavailable("script failed: " + error_text(reply));
  }
  return reply;
}

} // namespace exai::net
