#include "core/providers/retry_policy.hpp"

#include <time.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <string>

namespace exai::core {

RetryPolicy::RetryPolicy(RetryOptions options, std::uint64_t seed)
    : options_(options)
    , random_(seed)
{
}

std::optional<std::chrono::milliseconds>
RetryPolicy::next_delay(int failed_attempts,
                        std::optional<std::chrono::milliseconds> retry_after,
                        std::chrono::milliseconds elapsed)
{
  using std::chrono::milliseconds;
  if (failed_attempts >= options_.max_attempts) {
    return std::nullopt;
  }
  milliseconds delay{0};
  if (retry_after) {
    delay = std::max(milliseconds(0), *retry_after);
  } else {
    const int exponent = std::clamp(failed_attempts - 1, 0, 30);
    const double raw = static_cast<double>(options_.base_delay.count()) * std::ldexp(1.0, exponent);
    const double capped = std::min(raw, static_cast<double>(options_.max_delay.count()));
    double fraction = 0.0;
    if (options_.jitter > 0.0) {
      std::uniform_real_distribution<double> uniform(0.0, std::min(options_.jitter, 1.0));
      const std::lock_guard lock(mutex_);
      fraction = uniform(random_);
    }
    delay = milliseconds(static_cast<std::int64_t>(std::llround(capped * (1.0 - fraction))));
  }
  if (elapsed + delay > options_.max_total) {
    return std::nullopt;
  }
  return delay;
}

std::optional<std::chrono::milliseconds>
parse_retry_after(std::string_view value, std::chrono::system_clock::time_point now)
{
  while (!value.empty() && std::isspace(static_cast<unsigned char>(value.front())) != 0) {
    value.remove_prefix(1);
  }
  while (!value.empty() && std::isspace(static_cast<unsigned char>(value.back())) != 0) {
    value.remove_suffix(1);
  }
  if (value.empty()) {
    return std::nullopt;
  }
  if (std::isdigit(static_cast<unsigned char>(value.front())) != 0) {
    long long seconds = 0;
    const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
    if (ec != std::errc() || end != value.data() + value.size()) {
      return std::nullopt;
    }
    return std::chrono::milliseconds(std::min<long long>(seconds, 86400) * 1000);
  }
  // IMF-fixdate, e.g. "Sun, 06 Nov 1994 08:49:37 GMT" (RFC 9110 §5.6.7).
  const std::string text(value);
  std::tm parts{};
  const char* end = ::strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &parts);
  if (end == nullptr || *end != '\0') {
    return std::nullopt;
  }
  const std::time_t when = ::timegm(&parts);
  if (when == static_cast<std::time_t>(-1)) {
    return std::nullopt;
  }
  const auto delta = std::chrono::system_clock::from_time_t(when) - now;
  return std::max(std::chrono::milliseconds(0),
                  std::chrono::ceil<std::chrono::milliseconds>(delta));
}

} // namespace exai::core
