#pragma once

// One event loop of the daemon: a thread with its own epoll set and the
// connections it owns. Everything a connection does on its socket — read,
// parse, dispatch, write, time out — happens on its loop's thread, so a
// connection needs no lock for its socket state. Other threads talk to a loop
// only through post() (a task) and request_flush() (write a connection's
// queued output), both of which wake it through an eventfd.
//
// An event loop never blocks: no blocking recv/send, no mutex held across
// I/O, no waiting for capacity (STYLE B13).

#include "net/upstream/transfer_loop.hpp"

#include <spdlog/spdlog.h>

#include <sys/epoll.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <thread>
#include <unordered_map>
#include <vector>

namespace exai::net {

class Connection;
using SteadyClock = std::chrono::steady_clock;
using Millis = std::chrono::milliseconds;

// The busy-poll rule (EXAI_WS_BUSY_POLL_US): the next wait polls first only
// when this one brought events after an idle gap within the budget, so one
// long gap turns polling off until the peers are quick again.
constexpr bool
poll_next_wait(int events, std::chrono::nanoseconds idle_gap, std::chrono::microseconds budget)
{
  return events > 0 && budget.count() > 0 && idle_gap <= budget;
}

class EventLoop {
public:
  using Task = std::function<void()>;
  // Runs on the loop thread about every `tick` (timers of its connections).
  using TickFn = std::function<void(EventLoop& loop, SteadyClock::time_point now)>;

  // Throws std::system_error when epoll or the eventfd cannot be created.
  // With `transfers`, the loop nests a TransferLoop and binds it to its
  // thread (TransferLoop::here()): model calls admitted here run their
  // upstream exchanges here.
  EventLoop(std::size_t index,
            Millis tick,
            std::chrono::microseconds busy_poll,
            std::shared_ptr<spdlog::logger> log,
            std::optional<TransferLoop::Options> transfers = std::nullopt);
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;
  // Joins the thread (stop() first) and drops whatever it still owns.
  ~EventLoop();

  // Starts the thread. `on_tick` runs on it every tick.
  void start(TickFn on_tick);

  // Stops the thread after the current round and joins it. Idempotent.
  void stop() noexcept;

  // Runs `task` on the loop thread, after the current round. Any thread;
  // never blocks. Tasks posted after stop() are dropped.
  void post(Task task) noexcept;

  // Asks the loop to write `connection`'s queued output. Any thread.
  void request_flush(std::shared_ptr<Connection> connection) noexcept;

  bool on_loop_thread() const noexcept { return std::this_thread::get_id() == thread_id_.load(); }

  // --- loop thread only ---

  // Takes ownership of `connection` and watches its socket for `events`.
  // Throws std::system_error when epoll refuses the descriptor.
  void adopt(const std::shared_ptr<Connection>& connection, std::uint32_t events);
  // Changes the watched events (0 = watch nothing but errors).
  void watch(const Connection& connection, std::uint32_t events) noexcept;
  // Stops watching and forgets `connection` (the caller still holds it).
  void forget(const Connection& connection) noexcept;
  // Stops watching the socket but keeps owning the connection (its socket is
  // being used by another thread, e.g. for an HTTP exchange).
  void unwatch(const Connection& connection) noexcept;

  // The connections this loop owns (for ticks and shutdown).
  std::vector<std::shared_ptr<Connection>> connections() const;
  std::size_t connection_count() const noexcept { return connections_.size(); }

  // The loop's receive buffer: one buffer shared by all its connections, so
  // an idle connection holds none.
  std::span<char> receive_buffer() noexcept { return {buffer_.data(), buffer_.size()}; }

  std::size_t index() const noexcept { return index_; }
  // The nested transfer loop; null without one.
  TransferLoop* transfers() noexcept { return transfers_.get(); }
  const std::shared_ptr<spdlog::logger>& log() const noexcept { return log_; }

private:
  void run() noexcept;
  int wait(std::span<epoll_event> events, SteadyClock::time_point next_tick, bool poll_first);
  void run_posted() noexcept;
  void wake() noexcept;
  // Queues `item` unless the loop stopped; wakes the loop when `needs_wake`
  // and no wake-up is pending yet.
  template <typename Item>
  void enqueue(std::vector<Item>& queue, Item item, bool needs_wake) noexcept;

  const std::size_t index_;
  const Millis tick_;
  const std::chrono::microseconds busy_poll_;
  const std::shared_ptr<spdlog::logger> log_;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  TickFn on_tick_;
  std::thread thread_;
  std::atomic<std::thread::id> thread_id_{};
  std::atomic<bool> running_{false};
  std::vector<char> buffer_;
  std::unique_ptr<TransferLoop> transfers_; // its descriptor sits in epoll_fd_

  // Loop thread only.
  std::unordered_map<std::uint64_t, std::shared_ptr<Connection>> connections_;

  std::mutex mutex_;
  std::vector<Task> tasks_;                          // guarded by mutex_
  std::vector<std::shared_ptr<Connection>> flushes_; // guarded by mutex_
  bool woken_ = false;                               // guarded by mutex_
  bool stopped_ = false;                             // guarded by mutex_
};

} // namespace exai::net
