#include "core/util/thread_pool.hpp"

#include "core/log.hpp"

#include <exception>

namespace exai::core {

ThreadPool::ThreadPool(std::size_t max_threads)
    : max_threads_(max_threads == 0 ? 1 : max_threads)
{
}

ThreadPool::~ThreadPool()
{
  std::vector<std::thread> threads;
  {
    const std::lock_guard lock(mutex_);
    stopping_ = true;
    threads.swap(threads_);
  }
  ready_.notify_all();
  for (auto& thread : threads) {
    thread.join();
  }
}

bool
ThreadPool::post(std::function<void()> job)
{
  {
    const std::lock_guard lock(mutex_);
    if (stopping_) {
      return false;
    }
    jobs_.push_back(std::move(job));
    if (idle_ < jobs_.size() && threads_.size() < max_threads_) {
      threads_.emplace_back([this] { work(); });
      return true;
    }
  }
  ready_.notify_one();
  return true;
}

bool
ThreadPool::post_if_idle(std::function<void()> job)
{
  {
    const std::lock_guard lock(mutex_);
    if (stopping_ || idle_ <= jobs_.size()) {
      return false;
    }
    jobs_.push_back(std::move(job));
  }
  ready_.notify_one();
  return true;
}

std::size_t
ThreadPool::queued() const
{
  const std::lock_guard lock(mutex_);
  return jobs_.size();
}

std::size_t
ThreadPool::threads() const
{
  const std::lock_guard lock(mutex_);
  return threads_.size();
}

void
ThreadPool::work()
{
  std::unique_lock lock(mutex_);
  for (;;) {
    ++idle_;
    ready_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
    --idle_;
    if (jobs_.empty()) {
      return; // stopping and drained
    }
    auto job = std::move(jobs_.front());
    jobs_.pop_front();
    lock.unlock();
    try {
      job();
    } catch (const std::exception& e) {
      // A job's bug must not end the daemon and every call in it: what the
      // job held went back as the exception unwound (RAII), and a call it
      // left unanswered still gets its deadline's answer.
      log::get("core")->error("a pooled job failed error=\"{}\"", e.what());
    } catch (...) {
      log::get("core")->error("a pooled job failed with a non-standard exception");
    }
    // What the job captured is released before the lock is taken again: its
    // destructors may post to this pool or take locks of their own.
    job = nullptr;
    lock.lock();
  }
}

} // namespace exai::core
