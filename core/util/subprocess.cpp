#include "core/util/subprocess.hpp"

#include "core/util/unique_fd.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace exai::core {

namespace {

// Polls at least this often, so a stop request is seen promptly.
constexpr std::chrono::milliseconds kStopCheck{50};

struct Pipe {
  UniqueFd read;
  UniqueFd write;
};

std::optional<Pipe>
make_pipe()
{
  std::array<int, 2> fds{};
  if (::pipe2(fds.data(), O_CLOEXEC) != 0) {
    return std::nullopt;
  }
  return Pipe{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

// Reads what is available into `into`, keeping at most `limit` bytes.
// False at end of file or on error.
bool
drain(int fd, std::string& into, std::size_t limit, bool& truncated)
{
  std::array<char, 65536> buffer{};
  const ssize_t n = ::read(fd, buffer.data(), buffer.size());
  if (n < 0 && errno == EINTR) {
    return true;
  }
  if (n <= 0) {
    return false;
  }
  const auto got = static_cast<std::size_t>(n);
  const std::size_t room = limit > into.size() ? limit - into.size() : 0;
  into.append(buffer.data(), std::min(got, room));
  truncated = truncated || got > room;
  return true;
}

} // namespace

std::optional<ProcessResult>
run_process(const std::vector<std::string>& argv, const ProcessOptions& options)
{
  if (argv.empty()) {
    return std::nullopt;
  }
  auto out = make_pipe();
  auto err = make_pipe();
  if (!out || !err) {
    return std::nullopt;
  }

  std::vector<std::string> env_strings;
  for (const auto& name : options.inherit) {
    if (const char* value = std::getenv(name.c_str()); value != nullptr) {
      env_strings.push_back(name + "=" + value);
    }
  }
  env_strings.insert(env_strings.end(), options.environment.begin(), options.environment.end());
  std::vector<char*> envp;
  for (auto& entry : env_strings) {
    envp.push_back(entry.data());
  }
  envp.push_back(nullptr);
  std::vector<std::string> args = argv;
  std::vector<char*> argp;
  for (auto& arg : args) {
    argp.push_back(arg.data());
  }
  argp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attributes;
  ::posix_spawn_file_actions_init(&actions);
  ::posix_spawnattr_init(&attributes);
  ::posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  ::posix_spawn_file_actions_adddup2(&actions, out->write.get(), STDOUT_FILENO);
  ::posix_spawn_file_actions_adddup2(&actions, err->write.get(), STDERR_FILENO);
  // The daemon's other descriptors (sockets, files) are none of the child's business.
  ::posix_spawn_file_actions_addclosefrom_np(&actions, STDERR_FILENO + 1);
  // serve blocks SIGINT/SIGTERM in every thread and may ignore SIGPIPE; the
  // child starts clean.
  sigset_t empty;
  sigset_t defaults;
  ::sigemptyset(&empty);
  ::sigemptyset(&defaults);
  for (const int signal : {SIGPIPE, SIGINT, SIGTERM, SIGCHLD}) {
    ::sigaddset(&defaults, signal);
  }
  ::posix_spawnattr_setsigmask(&attributes, &empty);
  ::posix_spawnattr_setsigdefault(&attributes, &defaults);
  ::posix_spawnattr_setflags(&attributes,
                             static_cast<short>(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF));
  pid_t pid = -1;
  const int spawned =
      ::posix_spawnp(&pid, argp[0], &actions, &attributes, argp.data(), envp.data());
  ::posix_spawn_file_actions_destroy(&actions);
  ::posix_spawnattr_destroy(&attributes);
  if (spawned != 0) {
    return std::nullopt;
  }
  out->write.reset();
  err->write.reset();

  ProcessResult result;
  bool error_truncated = false;
  std::array<pollfd, 2> fds{{{out->read.get(), POLLIN, 0}, {err->read.get(), POLLIN, 0}}};
  while (fds[0].fd >= 0 || fds[1].fd >= 0) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= options.deadline || options.stop.stop_requested()) {
      result.killed = true;
      ::kill(pid, SIGKILL);
      break;
    }
    const auto wait =
        std::min(std::chrono::duration_cast<std::chrono::milliseconds>(options.deadline - now) +
                     std::chrono::milliseconds(1),
                 kStopCheck);
    if (::poll(fds.data(), fds.size(), static_cast<int>(wait.count())) < 0 && errno != EINTR) {
      result.killed = true;
      ::kill(pid, SIGKILL);
      break;
    }
    if (fds[0].fd >= 0 && fds[0].revents != 0 &&
        !drain(fds[0].fd, result.out, options.max_output, result.truncated)) {
      fds[0].fd = -1;
    }
    if (fds[1].fd >= 0 && fds[1].revents != 0 &&
        !drain(fds[1].fd, result.err, options.max_error, error_truncated)) {
      fds[1].fd = -1;
    }
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && !result.killed) {
    result.exit_code = WEXITSTATUS(status);
  }
  return result;
}

} // namespace exai::core
