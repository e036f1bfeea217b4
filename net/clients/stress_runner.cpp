#include "net/clients/stress_runner.hpp"

#include "net/clients/stress_connections.hpp"
#include "net/clients/stress_ledger.hpp"
#include "net/clients/stress_scenarios.hpp"
#include "net/protocol/op_protocol.hpp"
#include "net/util/poco_time.hpp"

#include <Poco/Buffer.h>
#include <Poco/Exception.h>
#include <Poco/Net/WebSocket.h>
#include <fmt/format.h>

#include <algorithm>
#include <condition_variable>
#include <latch>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

namespace exai::net {

namespace {

using Clock = std::chrono::steady_clock;
using core::stress::CallClass;
using nlohmann::json;
using Poco::Net::WebSocket;
using namespace std::chrono_literals;

constexpr auto kLoopTick = 5ms;
constexpr auto kOverdueCheck = 100ms;
constexpr auto kControlPingEvery = 1s; // far inside the default EXAI_WS_PING_INTERVAL (30 s)

StressLedger::Limits
ledger_limits(const StressOptions& options)
{
  StressLedger::Limits limits;
  limits.overdue_after = options.acquire_timeout + options.call_timeout + options.drain_timeout;
  limits.max_bytes = options.max_bytes;
  return limits;
}

} // namespace

// Everything the load threads share.
struct StressRunner::Shared {
  explicit Shared(std::ptrdiff_t workers)
      : connected(workers)
  {
  }
  std::latch connected;
  std::mutex mutex;
  std::condition_variable changed;
  bool go = false;     // guarded by mutex
  bool abort = false;  // guarded by mutex
  std::size_t running; // guarded by mutex: workers not finished
  Clock::time_point start;
  std::optional<Clock::time_point> load_deadline; // --duration
  std::atomic<std::int64_t> budget{0};            // scenarios left (when limited)
  bool limited = true;
  std::string run_id;

  // Takes one scenario from the budget; false once the load is over.
  bool take(Clock::time_point now)
  {
    if (load_deadline && now >= *load_deadline) {
      return false;
    }
    return !limited || budget.fetch_sub(1, std::memory_order_relaxed) > 0;
  }
};

// One load thread: its connections, its calls, and the loop that keeps
// `concurrency` scenarios in flight. Everything here is touched by this
// thread only, except the published atomics.
struct StressRunner::Worker {
  Worker(const StressOptions& options,
         Shared& shared,
         std::size_t index,
         std::size_t connections,
         std::size_t concurrency)
      : options_(options)
      , shared_(shared)
      , pool_size_(connections)
      , concurrency_(concurrency)
      , ledger_(ledger_limits(options))
      , connections_(options.target, options.io_timeout, ledger_)
      , scenarios_(options, shared.run_id, index, connections_, ledger_)
  {
  }

  void run() noexcept
  {
    try {
      connections_.open_pool(pool_size_);
      connections_open_.store(connections_.pool_size(), std::memory_order_relaxed);
    } catch (const std::exception& e) {
      ledger_.violation("internal", e.what());
    }
    shared_.connected.count_down();
    bool go = false;
    {
      std::unique_lock lock(shared_.mutex);
      shared_.changed.wait(lock, [this] { return shared_.go || shared_.abort; });
      go = shared_.go && !shared_.abort;
    }
    if (go && connections_.ready()) {
      try {
        load();
      } catch (const std::exception& e) {
        ledger_.violation("internal", e.what());
      }
    }
    connections_.close_all();
    connections_open_.store(0, std::memory_order_relaxed);
    publish();
    const std::lock_guard lock(shared_.mutex);
    --shared_.running;
    shared_.changed.notify_all();
  }

  const StressLedger& ledger() const noexcept { return ledger_; }
  const StressConnections& connections() const noexcept { return connections_; }

  std::atomic<std::size_t> calls_done_{0};
  std::atomic<std::size_t> errors_done_{0};
  std::atomic<std::size_t> violations_seen_{0};
  std::atomic<std::size_t> inflight_{0};
  std::atomic<std::size_t> connections_open_{0};

private:
  void load()
  {
    const std::size_t limit = std::max<std::size_t>(1, concurrency_);
    bool starting = true;
    std::optional<Clock::time_point> drain_deadline;
    auto next_overdue_check = Clock::now() + kOverdueCheck;
    ledger_.begin(shared_.start);
    while (true) {
      auto now = Clock::now();
      starting = starting && top_up(now, limit);
      if (!starting && !drain_deadline) {
        drain_deadline = now + drain_wait();
      }
      if (!starting && ledger_.pending() == 0) {
        break;
      }
      connections_.poll(kLoopTick);
      now = Clock::now();
      connections_.check_oversize(now);
      if (now >= next_overdue_check) {
        next_overdue_check = now + kOverdueCheck;
        ledger_.check_overdue(now);
      }
      publish();
      if (drain_deadline && now >= *drain_deadline) {
        ledger_.report_outstanding();
        break;
      }
    }
    publish();
  }

  // Starts scenarios until `limit` answers are pending; false once the load
  // is over (budget or duration used up, or no connection left).
  bool top_up(Clock::time_point now, std::size_t limit)
  {
    while (ledger_.pending() < limit) {
      // A connection first: a thread whose pool was refused or lost must not
      // take a scenario from the shared budget that another thread could run.
      if (connections_.next_pool_conn() == nullptr || !shared_.take(now)) {
        return false;
      }
      scenarios_.start();
    }
    return true;
  }

  std::chrono::milliseconds drain_wait() const
  {
    auto wait = options_.drain_timeout;
    if (options_.mix.weight(CallClass::timeout) > 0) {
      wait = std::max<std::chrono::milliseconds>(wait, options_.call_timeout + 5s);
    }
    return wait;
  }

  void publish() noexcept
  {
    calls_done_.store(ledger_.tally().calls(), std::memory_order_relaxed);
    errors_done_.store(ledger_.errors(), std::memory_order_relaxed);
    violations_seen_.store(ledger_.violations().total(), std::memory_order_relaxed);
    inflight_.store(ledger_.pending(), std::memory_order_relaxed);
  }

  const StressOptions& options_;
  Shared& shared_;
  const std::size_t pool_size_;
  const std::size_t concurrency_;
  StressLedger ledger_;
  StressConnections connections_;
  StressScenarios scenarios_;
};

namespace {

using Workers = std::vector<std::unique_ptr<StressRunner::Worker>>;

StressProgress
progress_of(const Workers& workers)
{
  StressProgress p;
  for (const auto& w : workers) {
    p.calls += w->calls_done_.load(std::memory_order_relaxed);
    p.errors += w->errors_done_.load(std::memory_order_relaxed);
    p.violations += w->violations_seen_.load(std::memory_order_relaxed);
    p.inflight += w->inflight_.load(std::memory_order_relaxed);
    p.connections += w->connections_open_.load(std::memory_order_relaxed);
  }
  return p;
}

// How opening the pool went, over all workers.
struct Opened {
  std::size_t opened = 0;
  std::size_t failed = 0;
  std::string first_error;
};

Opened
opened_by(const Workers& workers)
{
  Opened result;
  for (const auto& w : workers) {
    result.opened += w->connections_open_.load();
    result.failed += w->connections().connect_failures();
    if (result.first_error.empty()) {
      result.first_error = w->connections().first_connect_error();
    }
  }
  return result;
}

LoadResult
merge_results(const Workers& workers,
              const Opened& opened,
              Clock::time_point start,
              std::size_t connections,
              std::size_t concurrency)
{
  LoadResult result;
  result.connections = opened.opened;
  result.concurrency = concurrency;
  auto last = start;
  for (const auto& w : workers) {
    result.tally.merge(w->ledger().tally());
    result.violations.merge(w->ledger().violations());
    result.refused += w->connections().refused();
    if (result.refused_reason.empty()) {
      result.refused_reason = w->connections().refused_reason();
    }
    last = std::max(last, w->ledger().last_result());
  }
  if (opened.failed > 0) {
    result.violations.add("connect_failed",
                          fmt::format("{} of {} connections could not be opened: {}",
                                      opened.failed,
                                      connections,
                                      opened.first_error));
  }
  result.elapsed_s = std::chrono::duration<double>(last - start).count();
  return result;
}

} // namespace

StressRunner::StressRunner(StressOptions options)
    : options_(std::move(options))
{
}

StressRunner::~StressRunner() = default;

LoadResult
StressRunner::run(const std::function<void(const StressProgress&)>& tick)
{
  const std::size_t hardware = std::max(1U, std::thread::hardware_concurrency());
  std::size_t threads =
      options_.threads != 0 ? options_.threads : std::min<std::size_t>(4, hardware);
  threads = std::max<std::size_t>(1, std::min(threads, options_.connections));
  const std::size_t concurrency =
      options_.concurrency != 0 ? options_.concurrency : options_.connections;

  Shared shared(static_cast<std::ptrdiff_t>(threads));
  shared.running = threads;
  shared.limited = options_.calls != 0 || !options_.duration;
  shared.budget = static_cast<std::int64_t>(options_.calls);
  {
    std::random_device random;
    shared.run_id = fmt::format("{:08x}", random());
  }

  std::vector<std::unique_ptr<Worker>> workers;
  for (std::size_t w = 0; w < threads; ++w) {
    const std::size_t share = options_.connections / threads + (w < options_.connections % threads);
    workers.push_back(std::make_unique<Worker>(
        options_, shared, w, share, concurrency / threads + (w < concurrency % threads)));
  }
  std::vector<std::thread> threads_running;
  threads_running.reserve(threads);
  for (auto& worker : workers) {
    threads_running.emplace_back([&worker] { worker->run(); });
  }

  const auto progress = [&workers] { return progress_of(workers); };
  const auto join_all = [&threads_running] {
    for (auto& t : threads_running) {
      t.join();
    }
  };

  shared.connected.wait();
  const Opened opened = opened_by(workers);
  if (opened.opened == 0) {
    {
      const std::lock_guard lock(shared.mutex);
      shared.abort = true;
    }
    shared.changed.notify_all();
    join_all();
    throw StressUnreachable(opened.first_error.empty() ? "no connection could be opened"
                                                       : opened.first_error);
  }

  // An explicit idle period requested by the caller (e.g. to measure the
  // daemon's memory per idle connection), not a wait for a condition.
  const auto hold_until = Clock::now() + options_.hold;
  while (Clock::now() < hold_until) {
    tick(progress());
    std::this_thread::sleep_for(std::min<Clock::duration>(1s, hold_until - Clock::now()));
  }

  shared.start = Clock::now();
  if (options_.duration) {
    shared.load_deadline = shared.start + *options_.duration;
  }
  {
    const std::lock_guard lock(shared.mutex);
    shared.go = true;
  }
  shared.changed.notify_all();
  {
    std::unique_lock lock(shared.mutex);
    while (!shared.changed.wait_for(lock, 1s, [&shared] { return shared.running == 0; })) {
      lock.unlock();
      tick(progress());
      lock.lock();
    }
  }
  join_all();

  return merge_results(workers, opened, shared.start, options_.connections, concurrency);
}

struct ControlConnection::Impl {
  std::unique_ptr<WebSocket> ws;
  Poco::Buffer<char> buffer{0};
  Clock::time_point last_sent = Clock::now();
};

ControlConnection::ControlConnection(const DaemonAddress& target, std::chrono::milliseconds timeout)
    : impl_(std::make_unique<Impl>())
{
  impl_->ws = stress_connect(target, timeout);
}

ControlConnection::~ControlConnection()
{
  try {
    impl_->ws->shutdown();
    impl_->ws->close();
  } catch (const Poco::Exception&) {
    // Gone already.
  }
}

std::optional<json>
ControlConnection::health(std::chrono::milliseconds timeout, std::string& error)
{
  const auto deadline = Clock::now() + timeout;
  try {
    send_text_frame(*impl_->ws, protocol::health_frame());
    impl_->last_sent = Clock::now();
    while (Clock::now() < deadline) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      impl_->ws->setReceiveTimeout(to_timespan(std::max(left, std::chrono::milliseconds(1))));
      int flags = 0;
      if (!receive_data_frame(*impl_->ws, impl_->buffer, flags)) {
        error = "the daemon closed the control connection";
        return std::nullopt;
      }
      auto parsed = protocol::parse_frame({impl_->buffer.begin(), impl_->buffer.size()});
      const auto* frame_ptr = std::get_if<json>(&parsed);
      if (frame_ptr != nullptr && frame_ptr->value("op", "") == "health_res") {
        const json& frame = *frame_ptr;
        const auto health = frame.find("health");
        if (frame.value("ok", false) != true || health == frame.end()) {
          error = "health_res not ok: " + frame.dump();
          return std::nullopt;
        }
        return *health;
      }
    }
    error = "no health_res in time";
  } catch (const Poco::TimeoutException&) {
    error = "no health_res in time";
  } catch (const Poco::Exception& e) {
    error = e.displayText();
  }
  return std::nullopt;
}

void
ControlConnection::keep_alive()
{
  try {
    WebSocket& ws = *impl_->ws;
    // Frames that arrived meanwhile are the daemon's pings and the pongs to
    // ours; nothing else is pending (health() reads its own answer before
    // returning). receive_frame answers the pings, one whole frame at a time.
    while (ws.available() > 0) {
      int flags = 0;
      if (receive_frame(ws, impl_->buffer, flags) == FrameKind::closed) {
        return; // health() will say so
      }
    }
    if (Clock::now() - impl_->last_sent >= kControlPingEvery) {
      ws.sendFrame(nullptr,
                   0,
                   static_cast<int>(WebSocket::FRAME_FLAG_FIN) |
                       static_cast<int>(WebSocket::FRAME_OP_PING));
      impl_->last_sent = Clock::now();
    }
  } catch (const Poco::Exception&) {
    // health() reports a broken connection with its reason.
  }
}

} // namespace exai::net
