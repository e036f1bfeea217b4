#pragma once

// Waiting on a condition in tests: re-checked every `step`, bounded by a
// deadline — never a sleep that assumes how long something takes.

#include <chrono>
#include <thread>

namespace exai::test {

using Deadline = std::chrono::steady_clock::time_point;

// A deadline `limit` from now, on the clock the capacity gates and the test
// clients wait on.
inline Deadline
deadline_in(std::chrono::milliseconds limit)
{
  return std::chrono::steady_clock::now() + limit;
}

// True as soon as `predicate()` holds; false if it still does not after `limit`.
template <typename Predicate>
bool
eventually(Predicate predicate,
           std::chrono::milliseconds limit = std::chrono::seconds(5),
           std::chrono::milliseconds step = std::chrono::milliseconds(2))
{
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!predicate()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      return false;
    }
    std::this_thread::sleep_for(step);
  }
  return true;
}

} // namespace exai::test
