#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace exai::core {

// A point-in-time copy of a Histogram: per-bucket (not cumulative) counts,
// the last one for observations above every bound.
struct HistogramSnapshot {
  std::vector<double> bounds; // upper bounds in seconds, ascending
  std::vector<std::uint64_t> counts;
  double sum = 0;
  std::uint64_t count = 0;
};

// A fixed-bucket latency histogram, lock-free to observe. Thread-safe.
class Histogram {
public:
  // Buckets from 1 ms to 5 min, Prometheus' usual shape stretched for model calls.
  static constexpr std::array<double, 14> kLatencyBounds = {
      0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60, 300};

  Histogram();
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;
  ~Histogram() = default;

  void observe(double seconds) noexcept;
  HistogramSnapshot snapshot() const;

private:
  std::array<std::atomic<std::uint64_t>, kLatencyBounds.size() + 1> counts_{};
  std::atomic<std::uint64_t> sum_micros_{0};
};

} // namespace exai::core
