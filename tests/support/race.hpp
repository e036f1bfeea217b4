#pragma once

// Threads that start their work together, for tests of what happens when
// callers race. Header-only so that core tests, which link no test support
// library, can use it.

#include <atomic>
#include <thread>
#include <vector>

namespace exai::test {

// Runs body(i) for each i in [0, threads) on its own thread. Every thread
// waits until all have started, so the calls overlap as far as the machine
// allows; returns once all have finished.
template <typename Body>
void
race(int threads, Body body)
{
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> running;
  running.reserve(static_cast<std::size_t>(threads));
  for (int i = 0; i < threads; ++i) {
    running.emplace_back([&, i] {
      ready.fetch_add(1);
      while (!go.load()) {
        std::this_thread::yield();
      }
      body(i);
    });
  }
  while (ready.load() < threads) {
    std::this_thread::yield();
  }
  go.store(true);
  for (auto& thread : running) {
    thread.join();
  }
}

} // namespace exai::test
