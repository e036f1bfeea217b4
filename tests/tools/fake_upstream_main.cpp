// exai_fake_upstream: the test fake upstream as a standalone process, for the
// stress and benchmark scripts. Prints "listening on 127.0.0.1:PORT" on stdout
// once ready; exits on SIGTERM/SIGINT or when stdin reaches EOF (unless
// --ignore-stdin). Request behaviour is steered by prompt directives; see
// tests/support/fake_upstream.hpp.

#include "tests/support/fake_upstream.hpp"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <string>
#include <string_view>
#include <thread>

namespace {

constexpr std::string_view kUsage =
    "usage: exai_fake_upstream [--port N] [--latency-ms N] [--key KEY]\n"
    "                          [--tls-cert PEM --tls-key PEM] [--max-threads N] [--ignore-stdin]\n"
    "                          [--connect-delay-ms N] [--chunk-ms N]\n"
    "  --port N        TCP port on 127.0.0.1 (default 0: ephemeral)\n"
    "  --latency-ms N  default delay before every chat reply (default 0)\n"
    "  --key KEY       require 'Authorization: Bearer KEY' (default: no check)\n"
    "  --tls-cert PEM, --tls-key PEM  serve HTTPS with this certificate and key\n"
    "  --max-threads N concurrent connections served (default 64)\n"
    "  --ignore-stdin  do not exit when stdin reaches EOF (for `&` in scripts)\n"
    "  --connect-delay-ms N  added to the first request of every new connection (default 0)\n"
    "  --chunk-ms N    default delay between the events of a streamed reply (default 0)\n"
    "Prints 'listening on 127.0.0.1:PORT'. Prompt directives such as [[sleep_ms=N]],\n"
    "[[status=N]], [[hang]], [[glm_1302]] steer single requests; \"stream\": true\n"
    "requests get server-sent events ([[chunk_ms=N]], [[sse_error]], [[stall_ms=N]]...).\n";

int
number(std::string_view option, const char* value)
{
  char* end = nullptr;
  const long parsed = std::strtol(value, &end, 10);
  if (end == value || *end != '\0' || parsed < 0 || parsed > 1000000) {
    std::cerr << "exai_fake_upstream: bad value for " << option << ": " << value << "\n";
    std::exit(64);
  }
  return static_cast<int>(parsed);
}

} // namespace

int
main(int argc, char** argv)
{
  try {
    exai::test::FakeUpstream::Options options;
    options.record = false; // nothing reads this process's requests
    bool watch_stdin = true;
    for (int i = 1; i < argc; ++i) {
      const std::string_view arg = argv[i];
      const auto value = [&]() -> const char* {
        if (i + 1 >= argc) {
          std::cerr << "exai_fake_upstream: " << arg << " needs a value\n" << kUsage;
          std::exit(64);
        }
        return argv[++i];
      };
      if (arg == "--port") {
        options.port = static_cast<std::uint16_t>(number(arg, value()));
      } else if (arg == "--latency-ms") {
        options.behavior.latency = std::chrono::milliseconds(number(arg, value()));
      } else if (arg == "--key") {
        options.expected_key = value();
      } else if (arg == "--tls-cert") {
        options.cert_file = value();
      } else if (arg == "--tls-key") {
        options.key_file = value();
      } else if (arg == "--max-threads") {
        options.max_threads = std::max(1, number(arg, value()));
      } else if (arg == "--connect-delay-ms") {
        options.connect_delay = std::chrono::milliseconds(number(arg, value()));
      } else if (arg == "--chunk-ms") {
        options.behavior.chunk_delay = std::chrono::milliseconds(number(arg, value()));
      } else if (arg == "--ignore-stdin") {
        watch_stdin = false;
      } else if (arg == "--help" || arg == "-h") {
        std::cout << kUsage;
        return 0;
      } else {
        std::cerr << "exai_fake_upstream: unknown option " << arg << "\n" << kUsage;
        return 64;
      }
    }

    // Block the termination signals before any thread starts, then wait for
    // them synchronously on this thread.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    exai::test::FakeUpstream fake(options);
    std::cout << "listening on 127.0.0.1:" << fake.port() << std::endl;

    if (watch_stdin) {
      std::thread([] {
        char buffer[256];
        while (::read(STDIN_FILENO, buffer, sizeof buffer) > 0) {
        }
        ::kill(::getpid(), SIGTERM);
      }).detach();
    }
    int received = 0;
    sigwait(&signals, &received);
    fake.stop();
    std::cerr << "exai_fake_upstream: stopped requests=" << fake.request_count()
              << " peak_concurrency=" << fake.peak_concurrency() << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "exai_fake_upstream: " << e.what() << "\n";
    return 70;
  }
}
