// exai_bench_transfer: what one model request costs the daemon's process on
// each of its two upstream paths, against the same upstream:
//   threads  UpstreamClient::complete on CONCURRENCY threads, each blocking on
//            its own kept-alive connection (how call threads reach a provider)
//   loop     CONCURRENCY requests kept in flight on one TransferLoop thread
//            (net/upstream/transfer_loop), each reply parsed as JSON too
// Prints requests/s and, per request, this process's CPU time and context
// switches (getrusage: all threads).
//
// Usage: exai_bench_transfer BASE_URL CONCURRENCY REQUESTS threads|loop
// (BASE_URL as GLM_API_URL, e.g. http://127.0.0.1:PORT/v1).

#include "net/upstream/transfer_loop.hpp"
#include "net/upstream/upstream_client.hpp"

#include <nlohmann/json.hpp>

#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace exai;
using Clock = std::chrono::steady_clock;

constexpr const char* kPrompt = "bench transfer";

// Every request's latency, in microseconds (any thread).
std::mutex g_latency_mutex;
std::vector<double> g_latencies;

void
record_latency(Clock::time_point start)
{
  const double us = std::chrono::duration<double, std::micro>(Clock::now() - start).count();
  const std::lock_guard lock(g_latency_mutex);
  g_latencies.push_back(us);
}

double
percentile(std::vector<double> values, double q)
{
  if (values.empty()) {
    return 0;
  }
  std::sort(values.begin(), values.end());
  return values[static_cast<std::size_t>(q * static_cast<double>(values.size() - 1))];
}

struct Usage {
  double cpu_us = 0;
  long switches = 0;
};

Usage
usage_now()
{
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  const auto us = [](const timeval& t) { return t.tv_sec * 1e6 + static_cast<double>(t.tv_usec); };
  return {us(u.ru_utime) + us(u.ru_stime), u.ru_nvcsw + u.ru_nivcsw};
}

void
run_threads(const std::string& base, int concurrency, int requests)
{
  net::UpstreamEndpoint endpoint;
  endpoint.id = "glm";
  endpoint.display_name = "GLM";
  endpoint.base_url = base;
  endpoint.api_key = "bench-key";
  endpoint.pool_size = static_cast<std::size_t>(concurrency);
  net::UpstreamClient client({endpoint});
  core::ChatRequest request;
  request.model = "glm-4.5-flash";
  request.messages = {{"user", kPrompt}};
  std::atomic<int> left{requests};
  std::atomic<int> failed{0};
  std::vector<std::jthread> threads;
  for (int i = 0; i < concurrency; ++i) {
    threads.emplace_back([&] {
      while (left.fetch_sub(1) > 0) {
        const auto start = Clock::now();
        if (std::holds_alternative<core::ChatFailure>(client.complete("glm", request, {}))) {
          ++failed;
        }
        record_latency(start);
      }
    });
  }
  threads.clear();
  if (failed > 0) {
    std::fprintf(stderr, "%d requests failed\n", failed.load());
  }
}

void
run_loop(const std::string& base, int concurrency, int requests, int loops)
{
  std::vector<net::TransferLoop*> loop_of; // the threads', declared last: they stop first
  std::mutex mutex;
  std::condition_variable finished;
  int done = 0;
  int failed = 0;
  std::atomic<int> left{requests};
  const std::string body = nlohmann::json{{"model", "glm-4.5-flash"},
                                          {"messages", {{{"role", "user"}, {"content", kPrompt}}}}}
                               .dump();
  std::function<void(std::size_t)> next = [&](std::size_t which) {
    if (left.fetch_sub(1) <= 0) {
      return;
    }
    net::TransferRequest request;
    request.pool = "glm";
    request.url = base + "/chat/completions";
    request.headers = {"Content-Type: application/json", "Authorization: Bearer bench-key"};
    request.body = body;
    net::TransferHandlers handlers;
    handlers.on_done = [&, which, start = Clock::now()](net::TransferResult result) {
      record_latency(start);
      const bool ok = result.error == net::TransferError::none && result.status == 200 &&
                      !nlohmann::json::parse(result.body, nullptr, false).is_discarded();
      bool last = false;
      {
        const std::lock_guard lock(mutex);
        ++done;
        failed += ok ? 0 : 1;
        last = done >= requests;
      }
      if (last) {
        finished.notify_one();
      }
      next(which);
    };
    loop_of[which]->start(std::move(request), std::move(handlers));
  };
  net::TransferLoop::Options options;
  options.max_cached = static_cast<std::size_t>(concurrency); // as the thread path's pool
  std::vector<std::unique_ptr<net::TransferThread>> threads;
  for (int i = 0; i < loops; ++i) {
    threads.push_back(std::make_unique<net::TransferThread>(options));
    loop_of.push_back(&threads.back()->loop());
  }
  for (int i = 0; i < concurrency; ++i) {
    next(static_cast<std::size_t>(i % loops));
  }
  std::unique_lock lock(mutex);
  finished.wait(lock, [&] { return done >= requests; });
  if (failed > 0) {
    std::fprintf(stderr, "%d requests failed\n", failed);
  }
}

} // namespace

int
main(int argc, char** argv)
{
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s BASE_URL CONCURRENCY REQUESTS threads|loop\n", argv[0]);
    return 64;
  }
  const std::string base = argv[1];
  const int concurrency = std::atoi(argv[2]);
  const int requests = std::atoi(argv[3]);
  const std::string mode = argv[4];
  if (concurrency < 1 || requests < 1 || (mode != "threads" && mode != "loop" && mode != "loop2")) {
    std::fprintf(stderr, "bad arguments\n");
    return 64;
  }
  const auto before = usage_now();
  const auto start = Clock::now();
  if (mode == "threads") {
    run_threads(base, concurrency, requests);
  } else {
    run_loop(base, concurrency, requests, mode == "loop" ? 1 : 2);
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const auto after = usage_now();
  std::printf("%s x%d: %.0f requests/s, p50 %.3f ms, p99 %.3f ms, %.1f us CPU and %.2f context "
              "switches per request\n",
              mode.c_str(),
              concurrency,
              requests / seconds,
              percentile(g_latencies, 0.50) / 1000,
              percentile(g_latencies, 0.99) / 1000,
              (after.cpu_us - before.cpu_us) / requests,
              static_cast<double>(after.switches - before.switches) / requests);
  return 0;
}
