#pragma once

// Provider exchanges without a thread per exchange: libcurl's multi interface
// on an epoll set of our own. HTTP/1.1, chunked bodies, TLS (with session
// reuse) and the keep-alive connection cache are libcurl's; what is ours is
// the event plumbing, the time limits (a deadline, and silence before and
// within an answer), cancellation, and the per-provider connection counters.
//
// The loop never blocks and is driven by whoever owns its thread: run() on a
// dedicated thread (TransferThread), or dispatch() whenever fd() — an epoll
// descriptor, so it can sit inside another epoll set — is readable. start()
// and cancel() may be called from any thread; they reach the loop through an
// eventfd. Every started exchange ends in exactly one on_done.
//
// Connections: a kept-alive connection is not used again once it idled past
// TransferRequest::max_idle or past the server's `Keep-Alive: timeout=` hint
// (less a second). Once the loop has run nothing for max_idle its cached
// connections are closed; while exchanges run, libcurl closes the expired
// ones as the next exchanges begin. A request that finds its kept-alive
// connection closed by the server before any byte of an answer is sent again
// once on a new connection by libcurl (TransferResult::retried_fresh). A
// cancelled or failed exchange's connection is closed, never kept.
//
// In `exai serve` each event loop nests one (EventLoop::transfers) and binds
// it to its thread (here()): a model call admitted on that thread runs its
// upstream exchanges on it, and the tool finishes there when the answer has
// arrived (UpstreamClient::start, the engine's continuation path). Calls that
// must block (files, a shared store) still run on call threads.

#include "core/providers/chat.hpp"
#include "core/util/unique_fd.hpp"
#include "net/upstream/transfer.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace exai::net {

class TransferLoop {
public:
  struct Options {
    std::string ca_file; // PEM bundle replacing the system store; empty: system store
    // Kept-alive connections libcurl holds, all hosts together: exai serve
    // sizes it from the providers' capacity scopes, as many as can be busy
    // at once; fewer, and every exchange past it opens a new connection.
    std::size_t max_cached = 16;
  };
  using Id = std::uint64_t;

  TransferLoop();
  explicit TransferLoop(Options options);
  // Ends every exchange still running or queued with `shutdown`. The thread
  // driving the loop must have stopped.
  ~TransferLoop();
  TransferLoop(const TransferLoop&) = delete;
  TransferLoop& operator=(const TransferLoop&) = delete;

  // Queues an exchange; any thread. `stop` cancels it. Returns its id for
  // cancel().
  Id start(TransferRequest request, TransferHandlers handlers, std::stop_token stop = {});
  // Ends exchange `id` with `cancelled` (its connection is closed); nothing
  // when it already ended. Any thread.
  void cancel(Id id);

  // --- the driving thread ---

  // Readable when dispatch() has something to do.
  int fd() const noexcept { return epoll_fd_.get(); }
  // Handles what is ready: queued starts and cancels, socket events, timers.
  // Never blocks.
  void dispatch();
  // Waits for events and dispatches them until `stop` is requested.
  void run(std::stop_token stop);

  // The counters of `pool`; any thread. `max_idle` is Options::max_cached.
  core::UpstreamPoolStats stats(std::string_view pool) const;
  // Exchanges running now (started and not yet ended); any thread.
  std::size_t running() const noexcept { return running_.load(std::memory_order_relaxed); }

  // Runs `task` on the driving thread soon (after what it is doing now); any
  // thread. Once the destructor began, the destructor runs it.
  void defer(std::function<void()> task);
  // Runs `fired(true)` on the driving thread at `when`, or `fired(false)`
  // once `stop` is requested or the loop is destroyed first: exactly once.
  // Any thread.
  void at(TransferClock::time_point when, std::stop_token stop, std::function<void(bool)> fired);

  // The loop bound to this thread (Binding), or null.
  static TransferLoop* here() noexcept;
  // Binds `loop` to the constructing thread for the binding's life.
  class Binding {
  public:
    explicit Binding(TransferLoop* loop) noexcept;
    ~Binding();
    Binding(const Binding&) = delete;
    Binding& operator=(const Binding&) = delete;

  private:
    TransferLoop* previous_;
  };

  // The counters of `pool` summed over every loop alive now; any thread.
  static core::UpstreamPoolStats all_stats(std::string_view pool);

private:
  struct Transfer;
  struct Pool;
  friend struct TransferCallbacks;

  void wake() noexcept;
  // Queues `task` for the driving thread; false (task untouched) once the
  // destructor began.
  bool post(std::function<void()>& task);
  void poll(int timeout_ms);
  bool run_posted(); // false when there was nothing to run
  struct Wait;
  void begin(std::unique_ptr<Transfer> transfer);
  void begin_wait(std::unique_ptr<Wait> wait);
  bool closing() const; // the destructor began
  void open_multi();
  // Closes the cached connections once nothing ran for their idle time.
  void close_idle();
  void end_wait(Id id, bool fired);
  void finish(Transfer& transfer, TransferError error, std::string message);
  void collect_done();
  void expire_due(TransferClock::time_point now);
  void arm_timer();
  void schedule(Transfer& transfer);
  Pool& pool(const std::string& name);

  // libcurl's callbacks (static trampolines in the .cpp).
  int on_socket(int fd, int what, void* socket_data);
  void on_timer(long timeout_ms);

  Options options_;
  core::UniqueFd epoll_fd_;
  core::UniqueFd wake_fd_;
  core::UniqueFd timer_fd_;
  void* multi_ = nullptr; // CURLM*
  void* share_ = nullptr; // CURLSH*: TLS sessions and DNS shared by all exchanges

  // The driving thread only.
  std::unordered_map<Id, std::unique_ptr<Transfer>> transfers_;
  std::set<std::pair<TransferClock::time_point, Id>> timers_; // one per exchange
  std::unordered_map<Id, std::unique_ptr<Wait>> waits_;       // at(), by id
  std::set<std::pair<TransferClock::time_point, Id>> wait_timers_;
  std::optional<TransferClock::time_point> curl_due_;
  std::optional<TransferClock::time_point> armed_;    // what timer_fd_ is set to
  std::optional<TransferClock::time_point> idle_due_; // nothing ran since: close_idle()
  std::vector<void*> spare_;                          // reset CURL* handles for the next exchanges

  mutable std::mutex mutex_;
  std::vector<std::function<void()>> posted_; // guarded by mutex_
  bool woken_ = false;                        // guarded by mutex_
  bool closed_ = false;                       // guarded by mutex_: the destructor ran
  std::map<std::string, std::unique_ptr<Pool>, std::less<>>
      pools_; // guarded by mutex_; never erased
  std::atomic<Id> next_id_{1};
  std::atomic<std::size_t> running_{0};
};

// A thread driving one TransferLoop, bound to it (TransferLoop::here());
// stops and joins before the loop ends.
class TransferThread {
public:
  TransferThread();
  explicit TransferThread(TransferLoop::Options options);
  TransferThread(const TransferThread&) = delete;
  TransferThread& operator=(const TransferThread&) = delete;

  TransferLoop& loop() noexcept { return loop_; }

private:
  TransferLoop loop_;
  std::jthread thread_; // last: joined before loop_ is destroyed
};

} // namespace exai::net
