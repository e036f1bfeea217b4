#pragma once

#include <atomic>
#include <mutex>
#include <optional>
#include <utility>

namespace exai::core {

// A value built exactly once, by the first caller, however many threads ask
// at the same time; every caller gets the same object. Replaces the Python
// daemon's racy module-level singletons. If the builder throws, the value
// stays unbuilt and the next caller tries again.
//
// A mutex plus an atomic pointer rather than std::call_once: libstdc++'s
// call_once hangs when the callable throws under ThreadSanitizer (its
// pthread_once interceptor does not unwind; GCC PR 66146 is the same family).
//
// Thread-safe. The value lives as long as the OnceValue.
template <typename T> class OnceValue {
public:
  OnceValue() = default;
  OnceValue(const OnceValue&) = delete;
  OnceValue& operator=(const OnceValue&) = delete;
  ~OnceValue() = default;

  // The value, building it with `build` if nobody has yet.
  template <typename Builder> const T& get(Builder&& build)
  {
    if (const T* ready = ready_.load(std::memory_order_acquire)) {
      return *ready;
    }
    const std::lock_guard lock(mutex_);
    if (!value_) {
      value_.emplace(std::forward<Builder>(build)());
      ready_.store(&*value_, std::memory_order_release);
    }
    return *value_;
  }

  // The value if it has been built, else null. Never blocks.
  const T* peek() const noexcept { return ready_.load(std::memory_order_acquire); }

private:
  std::mutex mutex_;
  std::optional<T> value_; // written once, under mutex_
  std::atomic<const T*> ready_{nullptr};
};

} // namespace exai::core
