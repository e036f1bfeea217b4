#include "core/util/subprocess.hpp"

#include <catch2/catch.hpp>

#include <signal.h>
#include <stdlib.h>

using namespace exai::core;
using namespace std::chrono_literals;

namespace {

ProcessOptions
within(std::chrono::milliseconds limit)
{
  ProcessOptions options;
  options.deadline = std::chrono::steady_clock::now() + limit;
  return options;
}

} // namespace

TEST_CASE("a process's output, errors and exit code are collected", "[core][subprocess]")
{
  const auto result = run_process({"sh", "-c", "printf out; printf err >&2; exit 3"}, within(10s));
  REQUIRE(result);
  CHECK(result->out == "out");
  CHECK(result->err == "err");
  CHECK(result->exit_code == 3);
  CHECK_FALSE(result->killed);
  CHECK_FALSE(result->truncated);
}

TEST_CASE("output beyond the limit is dropped and reported", "[core][subprocess]")
{
  auto options = within(10s);
  options.max_output = 10;
  const auto result = run_process({"sh", "-c", "head -c 100000 /dev/zero"}, options);
  REQUIRE(result);
  CHECK(result->out.size() == 10);
  CHECK(result->truncated);
  CHECK(result->exit_code == 0);
}

TEST_CASE("a process still running at the deadline is killed", "[core][subprocess]")
{
  const auto started = std::chrono::steady_clock::now();
  const auto result = run_process({"sleep", "30"}, within(200ms));
  REQUIRE(result);
  CHECK(result->killed);
  CHECK(result->exit_code == -1);
  CHECK(std::chrono::steady_clock::now() - started < 10s);
}

TEST_CASE("a stop request kills the process", "[core][subprocess]")
{
  std::stop_source stop;
  auto options = within(30s);
  options.stop = stop.get_token();
  stop.request_stop(); // e.g. the call was cancelled while git was starting
  const auto started = std::chrono::steady_clock::now();
  const auto result = run_process({"sleep", "30"}, options);
  REQUIRE(result);
  CHECK(result->killed);
  CHECK(std::chrono::steady_clock::now() - started < 10s);
}

TEST_CASE("the child gets only the environment it is given, default signals and no stdin",
          "[core][subprocess]")
{
  sigset_t blocked;
  sigemptyset(&blocked);
  sigaddset(&blocked, SIGTERM);
  sigset_t old;
  pthread_sigmask(SIG_BLOCK, &blocked, &old);
  ::setenv("EXAI_TEST_SECRET", "must-not-leak", 1);
  auto options = within(10s);
  options.environment = {"EXAI_TEST_VALUE=42"};
  const auto result = run_process({"sh",
                                   "-c",
                                   "printf %s \"$EXAI_TEST_VALUE\"; printf %s "
                                   "\"$EXAI_TEST_SECRET\"; grep SigBlk /proc/self/status; cat"},
                                  options);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ::unsetenv("EXAI_TEST_SECRET");
  REQUIRE(result);
  CHECK(result->out.find("must-not-leak") == std::string::npos); // only what it is given
  CHECK(result->out.rfind("42", 0) == 0);
  CHECK(result->out.find("SigBlk:\t0000000000000000") != std::string::npos);
  CHECK(result->exit_code == 0); // cat read /dev/null, not the test's stdin
}

TEST_CASE("a program that does not exist cannot be started", "[core][subprocess]")
{
  const auto result = run_process({"/nonexistent/exai-no-such-program"}, within(10s));
  // posix_spawn reports the failed exec either way: no result, or exit 127.
  CHECK((!result || result->exit_code == 127));
}
