#pragma once

#include <functional>
#include <mutex>
#include <optional>
#include <utility>

namespace exai::core {

// A value built exactly once, by the first caller, however many threads ask
// at the same time; every caller gets the same object. Replaces the Python
// daemon's racy module-level singletons. If the builder throws, the value
// stays unbuilt and the next caller tries again (std::call_once semantics).
//
// Thread-safe. The value lives as long as the OnceValue.
template <typename T> class OnceValue {
public:
  OnceValue() = default;
  OnceValue(const OnceValue&) = delete;
  OnceValue& operator=(const OnceValue&) = delete;
  OnceValue(OnceValue&&) = delete;
  OnceValue& operator=(OnceValue&&) = delete;
  ~OnceValue() = default;

  // The value, building it with `build` if nobody has yet.
  template <typename Builder> const T& get(Builder&& build)
  {
    std::call_once(flag_, [&] { value_.emplace(std::forward<Builder>(build)()); });
    return *value_;
  }

  // The value if it has been built (a call to get() completed), else null.
  const T* peek() const noexcept
  {
    // Only read after call_once published it: peek() is for diagnostics on a
    // thread that already called get(), never to race with the builder.
    return value_ ? &*value_ : nullptr;
  }

private:
  std::once_flag flag_;
  std::optional<T> value_; // written once inside call_once
};

} // namespace exai::core
