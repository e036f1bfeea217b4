#include "tests/support/serve_process.hpp"

#include <Poco/Net/SocketAddress.h>
#include <Poco/Net/StreamSocket.h>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <system_error>

namespace exai::test {

namespace {

std::string
make_work_dir()
{
  std::string tmpl = (std::filesystem::temp_directory_path() / "exai-serve-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) {
    throw std::system_error(errno, std::generic_category(), "mkdtemp");
  }
  return tmpl;
}

} // namespace

ServeProcess::ServeProcess(Env env,
                           std::vector<std::string> args,
                           std::vector<std::string> global_args,
                           std::string binary)
    : work_dir_(make_work_dir())
{
  if (binary.empty()) {
    throw std::invalid_argument("ServeProcess: no binary (EXAI_BINARY undefined)");
  }
  std::vector<std::string> argv_text{binary};
  argv_text.insert(argv_text.end(), global_args.begin(), global_args.end());
  argv_text.emplace_back("serve");
  if (std::find(args.begin(), args.end(), "--port") == args.end()) {
    argv_text.emplace_back("--port");
    argv_text.emplace_back("0");
  }
  argv_text.insert(argv_text.end(), args.begin(), args.end());

  Env full{{"PATH", "/usr/local/bin:/usr/bin:/bin"},
           {"HOME", work_dir_},
           {"EXAI_STATE_DIR", work_dir_ + "/state"}};
  for (const char* keep : {"ASAN_OPTIONS", "UBSAN_OPTIONS", "TSAN_OPTIONS", "LSAN_OPTIONS"}) {
    if (const char* value = std::getenv(keep)) {
      full[keep] = value;
    }
  }
  for (auto& [key, value] : env) {
    full[key] = value;
  }
  std::vector<std::string> env_text;
  env_text.reserve(full.size());
  for (const auto& [key, value] : full) {
    env_text.push_back(key + "=" + value);
  }
  std::vector<char*> argv;
  for (auto& a : argv_text) {
    argv.push_back(a.data());
  }
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (auto& e : env_text) {
    envp.push_back(e.data());
  }
  envp.push_back(nullptr);

  std::array<int, 2> pipe_fds{};
  if (::pipe2(pipe_fds.data(), O_CLOEXEC) != 0) {
    throw std::system_error(errno, std::generic_category(), "pipe2");
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], 2);
  posix_spawn_file_actions_addchdir_np(&actions, work_dir_.c_str());
  // The child starts with no blocked signals, whatever this thread blocks.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  const int rc =
      ::posix_spawn(&pid_, argv_text[0].c_str(), &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(pipe_fds[1]);
  if (rc != 0) {
    ::close(pipe_fds[0]);
    pid_ = -1;
    throw std::system_error(rc, std::generic_category(), "posix_spawn " + argv_text[0]);
  }
  reader_ = std::thread([this, fd = pipe_fds[0]] { read_stderr(fd); });
}

ServeProcess::~ServeProcess()
{
  if (pid_ > 0 && !exit_code_) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  if (reader_.joinable()) {
    reader_.join();
  }
  std::error_code ignored;
  std::filesystem::remove_all(work_dir_, ignored);
}

void
ServeProcess::read_stderr(int fd)
{
  std::array<char, 4096> chunk{};
  for (;;) {
    const auto n = ::read(fd, chunk.data(), chunk.size());
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      break;
    }
    {
      const std::lock_guard lock(mutex_);
      stderr_.append(chunk.data(), static_cast<std::size_t>(n));
    }
    changed_.notify_all();
  }
  ::close(fd);
  {
    const std::lock_guard lock(mutex_);
    eof_ = true;
  }
  changed_.notify_all();
}

std::unique_ptr<ServeProcess>
ServeProcess::start_ready(Env env, std::vector<std::string> args, std::string binary)
{
  auto process = std::make_unique<ServeProcess>(
      std::move(env), std::move(args), std::vector<std::string>{}, std::move(binary));
  if (!process->wait_ready()) {
    throw std::runtime_error("exai serve did not become ready; stderr:\n" + process->stderr_text());
  }
  return process;
}

bool
ServeProcess::wait_ready(std::chrono::milliseconds timeout)
{
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  static const std::regex kListening(R"(serve listening host=\S+ port=(\d+))");
  {
    std::unique_lock lock(mutex_);
    std::smatch match;
    const bool found = changed_.wait_until(
        lock, deadline, [&] { return std::regex_search(stderr_, match, kListening) || eof_; });
    if (!found || match.empty()) {
      return false;
    }
    port_ = static_cast<std::uint16_t>(std::stoi(match[1].str()));
  }
  // The line is logged after the listener started; confirm with a connect.
  while (std::chrono::steady_clock::now() < deadline) {
    try {
      Poco::Net::StreamSocket probe;
      probe.connect(Poco::Net::SocketAddress("127.0.0.1", port_), Poco::Timespan(1, 0));
      probe.close();
      return true;
    } catch (const Poco::Exception&) {
      std::unique_lock lock(mutex_);
      if (changed_.wait_for(lock, std::chrono::milliseconds(20), [this] { return eof_; })) {
        return false;
      }
    }
  }
  return false;
}

std::optional<int>
ServeProcess::wait_exit(std::chrono::milliseconds timeout)
{
  if (exit_code_) {
    return exit_code_;
  }
  // The stderr pipe reaches EOF when the process (and its children) exited.
  {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, timeout, [this] { return eof_; });
  }
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  for (;;) {
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      break;
    }
    if (r < 0 || std::chrono::steady_clock::now() >= deadline) {
      return std::nullopt;
    }
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, std::chrono::milliseconds(10)); // stderr closed, exit imminent
  }
  exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return exit_code_;
}

std::optional<int>
ServeProcess::stop(int signal, std::chrono::milliseconds timeout)
{
  if (exit_code_) {
    return exit_code_;
  }
  ::kill(pid_, signal);
  auto code = wait_exit(timeout);
  if (!code) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    exit_code_ = 128 + SIGKILL;
    return std::nullopt;
  }
  return code;
}

std::string
ServeProcess::stderr_text() const
{
  const std::lock_guard lock(mutex_);
  return stderr_;
}

bool
ServeProcess::wait_for_stderr(const std::string& needle, std::chrono::milliseconds timeout)
{
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] {
    return stderr_.find(needle) != std::string::npos || eof_;
  }) && stderr_.find(needle) != std::string::npos;
}

std::optional<long>
ServeProcess::status_field(const std::string& name) const
{
  std::ifstream status("/proc/" + std::to_string(pid_) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(name + ":", 0) == 0) {
      std::istringstream fields(line.substr(name.size() + 1));
      long value = 0;
      if (fields >> value) {
        return value;
      }
    }
  }
  return std::nullopt;
}

std::optional<long>
ServeProcess::rss_kib() const
{
  return status_field("VmRSS");
}

std::optional<long>
ServeProcess::thread_count() const
{
  return status_field("Threads");
}

} // namespace exai::test
