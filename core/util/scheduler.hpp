#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <utility>

namespace exai::core {

// One thread that runs short callbacks at given times: call deadlines and
// progress heartbeats. Callbacks must not block (they queue frames and
// request stops). Thread-safe.
class Scheduler {
public:
  using Clock = std::chrono::steady_clock;

  // Cancels its task when destroyed or reset; if the task is running on the
  // scheduler thread at that moment, waits for it to finish (unless called
  // from that very task). Move-only.
  class Handle {
  public:
    Handle() = default;
    Handle(Handle&& other) noexcept
        : owner_(std::exchange(other.owner_, nullptr))
        , id_(other.id_)
    {
    }
    Handle& operator=(Handle&& other) noexcept
    {
      if (this != &other) {
        reset();
        owner_ = std::exchange(other.owner_, nullptr);
        id_ = other.id_;
      }
      return *this;
    }
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;
    ~Handle() { reset(); }

    // True while it refers to a scheduled task.
    explicit operator bool() const noexcept { return owner_ != nullptr; }

    // Cancels the task. Idempotent.
    void reset() noexcept
    {
      if (owner_ != nullptr) {
        std::exchange(owner_, nullptr)->cancel(id_, true);
      }
    }

    // Cancels the task if it has not started; one already running is not
    // waited for. For a caller that holds locks the running task may need
    // (waiting would deadlock), when the task guards itself (a weak_ptr, a
    // flag it checks under its own lock).
    void abandon() noexcept
    {
      if (owner_ != nullptr) {
        std::exchange(owner_, nullptr)->cancel(id_, false);
      }
    }

  private:
    friend class Scheduler;
    Handle(Scheduler& owner, std::uint64_t id)
        : owner_(&owner)
        , id_(id)
    {
    }
    Scheduler* owner_ = nullptr;
    std::uint64_t id_ = 0;
  };

  Scheduler();
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Runs `task` once at `when`.
  [[nodiscard]] Handle at(Clock::time_point when, std::function<void()> task);
  // Runs `task` every `period`, first at now + period.
  [[nodiscard]] Handle every(std::chrono::milliseconds period, std::function<void()> task);

  // Number of scheduled tasks (for leak checks).
  std::size_t size() const;

private:
  struct Task {
    Clock::time_point when;
    std::chrono::milliseconds period{0};
    std::function<void()> run;
  };

  Handle add(Task task);
  void cancel(std::uint64_t id, bool wait) noexcept;
  void loop();

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::map<std::uint64_t, Task> tasks_;                       // guarded by mutex_
  std::set<std::pair<Clock::time_point, std::uint64_t>> due_; // guarded by mutex_
  std::uint64_t next_id_ = 1;                                 // guarded by mutex_
  std::uint64_t running_ = 0;                                 // guarded by mutex_
  bool stopping_ = false;                                     // guarded by mutex_
  std::thread::id thread_id_;
  std::thread thread_; // last: starts after every member above exists
};

} // namespace exai::core
