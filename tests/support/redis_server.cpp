#include "tests/support/redis_server.hpp"

#include <Poco/Exception.h>
#include <Poco/Redis/Client.h>
#include <Poco/Timespan.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>
#include <thread>
#include <vector>

extern char** environ;

namespace exai::test {

namespace {

std::uint16_t
free_loopback_port()
{
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) {
    throw std::runtime_error("socket failed");
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw std::runtime_error("bind 127.0.0.1:0 failed");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

} // namespace

RedisServer::RedisServer(std::vector<std::string> extra_args)
    : port_(free_loopback_port())
    , extra_args_(std::move(extra_args))
{
  start();
}

RedisServer::~RedisServer()
{
  stop();
}

std::string
RedisServer::url() const
{
  return "redis://127.0.0.1:" + std::to_string(port_);
}

void
RedisServer::start()
{
  if (pid_ > 0) {
    return;
  }
  const std::string port = std::to_string(port_);
  std::vector<std::string> args = {"redis-server",
                                   "--port",
                                   port,
                                   "--bind",
                                   "127.0.0.1",
                                   "--save",
                                   "",
                                   "--appendonly",
                                   "no",
                                   "--loglevel",
                                   "warning",
                                   "--daemonize",
                                   "no"};
  args.insert(args.end(), extra_args_.begin(), extra_args_.end());
  std::vector<char*> argv;
  for (auto& arg : args) {
    argv.push_back(arg.data());
  }
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t pid = -1;
  const int rc = posix_spawnp(&pid, "redis-server", &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    throw std::runtime_error("cannot start redis-server (install it: scripts/deps.sh): " +
                             std::string(std::strerror(rc)));
  }
  pid_ = pid;
  // Ready when it answers PING; give up after 10 s.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("redis-server exited at start (port " + port + ")");
    }
    try {
      Poco::Redis::Array ping;
      ping << "PING";
      command(ping);
      return;
    } catch (const Poco::Exception&) {
      // Not listening yet: a short pause between attempts, the deadline bounds it.
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  stop();
  throw std::runtime_error("redis-server did not answer PING within 10 s");
}

void
RedisServer::stop()
{
  if (pid_ <= 0) {
    return;
  }
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

void
RedisServer::pause()
{
  if (pid_ > 0) {
    ::kill(pid_, SIGSTOP);
  }
}

void
RedisServer::resume()
{
  if (pid_ > 0) {
    ::kill(pid_, SIGCONT);
  }
}

Poco::Redis::RedisType::Ptr
RedisServer::command(const Poco::Redis::Array& cmd) const
{
  Poco::Redis::Client client;
  client.connect("127.0.0.1", port_, Poco::Timespan(2, 0));
  client.setReceiveTimeout(Poco::Timespan(5, 0));
  if (!password_.empty()) {
    Poco::Redis::Array auth;
    auth << "AUTH" << password_;
    client.sendCommand(auth);
  }
  return client.sendCommand(cmd);
}

std::int64_t
RedisServer::integer(const Poco::Redis::Array& cmd) const
{
  const auto reply = command(cmd);
  const auto* value = dynamic_cast<const Poco::Redis::Type<Poco::Int64>*>(reply.get());
  if (value == nullptr) {
    throw std::runtime_error("not an integer reply: " + reply->toString());
  }
  return value->value();
}

std::int64_t
RedisServer::zcard(const std::string& key) const
{
  Poco::Redis::Array cmd;
  cmd << "ZCARD" << key;
  return integer(cmd);
}

} // namespace exai::test
