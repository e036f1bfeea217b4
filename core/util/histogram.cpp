#include "core/util/histogram.hpp"

#include <algorithm>
#include <cmath>

namespace exai::core {

Histogram::Histogram() = default;

void
Histogram::observe(double seconds) noexcept
{
  const auto bucket = static_cast<std::size_t>(
      std::lower_bound(kLatencyBounds.begin(), kLatencyBounds.end(), seconds) -
      kLatencyBounds.begin());
  counts_[bucket].fetch_add(1, std::memory_order_relaxed);
  const double micros = std::max(0.0, seconds) * 1e6;
  sum_micros_.fetch_add(static_cast<std::uint64_t>(std::llround(micros)),
                        std::memory_order_relaxed);
}

HistogramSnapshot
Histogram::snapshot() const
{
  HistogramSnapshot snap;
  snap.bounds.assign(kLatencyBounds.begin(), kLatencyBounds.end());
  for (const auto& counter : counts_) {
    const auto n = counter.load(std::memory_order_relaxed);
    snap.counts.push_back(n);
    snap.count += n;
  }
  snap.sum = static_cast<double>(sum_micros_.load(std::memory_order_relaxed)) / 1e6;
  return snap;
}

} // namespace exai::core
