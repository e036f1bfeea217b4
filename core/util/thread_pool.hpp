#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace exai::core {

// Threads for calls that block (waiting for capacity, waiting for a model).
// Grows on demand up to `max_threads` and never beyond; work beyond that
// queues in FIFO order. Thread-safe.
class ThreadPool {
public:
  explicit ThreadPool(std::size_t max_threads);
  ~ThreadPool(); // runs what is queued, then joins
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Queues `job`. Returns false (and drops it) once the pool is shutting down.
  // A job that throws is logged; its thread goes on with the next job.
  bool post(std::function<void()> job);
  // Queues `job` only when an idle thread takes it at once; false (and drops
  // it) otherwise.
  bool post_if_idle(std::function<void()> job);

  std::size_t queued() const;
  std::size_t threads() const;

private:
  void work();

  const std::size_t max_threads_;
  mutable std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> jobs_; // guarded by mutex_
  std::vector<std::thread> threads_;       // guarded by mutex_
  std::size_t idle_ = 0;                   // guarded by mutex_
  bool stopping_ = false;                  // guarded by mutex_
};

} // namespace exai::core
