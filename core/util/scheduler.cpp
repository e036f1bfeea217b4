#include "core/util/scheduler.hpp"

namespace exai::core {

Scheduler::Scheduler()
    : thread_([this] { loop(); })
{
}

Scheduler::~Scheduler()
{
  {
    const std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  thread_.join();
}

Scheduler::Handle
Scheduler::at(Clock::time_point when, std::function<void()> task)
{
  return add(Task{when, std::chrono::milliseconds(0), std::move(task)});
}

Scheduler::Handle
Scheduler::every(std::chrono::milliseconds period, std::function<void()> task)
{
  return add(Task{Clock::now() + period, period, std::move(task)});
}

Scheduler::Handle
Scheduler::add(Task task)
{
  std::uint64_t id = 0;
  bool earliest = false;
  {
    const std::lock_guard lock(mutex_);
    id = next_id_++;
    const auto position = due_.emplace(task.when, id).first;
    earliest = position == due_.begin(); // after the insertion, not before it
    tasks_.emplace(id, std::move(task));
  }
  // Wake the thread only when its next wake-up time moved earlier.
  if (earliest) {
    changed_.notify_all();
  }
  return Handle(*this, id);
}

void
Scheduler::cancel(std::uint64_t id, bool wait) noexcept
{
  std::unique_lock lock(mutex_);
  if (const auto it = tasks_.find(id); it != tasks_.end()) {
    due_.erase({it->second.when, id});
    tasks_.erase(it);
  }
  // A task cancelling itself must not wait for itself.
  if (wait && std::this_thread::get_id() != thread_id_) {
    changed_.wait(lock, [&] { return running_ != id; });
  }
}

std::size_t
Scheduler::size() const
{
  const std::lock_guard lock(mutex_);
  return tasks_.size();
}

void
Scheduler::loop()
{
  std::unique_lock lock(mutex_);
  thread_id_ = std::this_thread::get_id();
  while (!stopping_) {
    if (due_.empty()) {
      changed_.wait(lock);
      continue;
    }
    const auto [when, id] = *due_.begin();
    if (Clock::now() < when) {
      changed_.wait_until(lock, when);
      continue;
    }
    due_.erase(due_.begin());
    auto it = tasks_.find(id);
    std::function<void()> run = it->second.run; // copy: the task may cancel itself
    const auto period = it->second.period;
    if (period.count() > 0) {
      it->second.when = Clock::now() + period;
      due_.emplace(it->second.when, id);
    } else {
      tasks_.erase(it);
    }
    running_ = id;
    lock.unlock();
    run();
    lock.lock();
    running_ = 0;
    changed_.notify_all();
  }
}

} // namespace exai::core
