#pragma once

// Token counts of one completion, read from the provider's `usage` object,
// and their running totals per provider and model (with cost when a price
// table is configured), for results, /metrics and /health.

#include "core/config/price_table.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace exai::core {

struct TokenUsage {
  std::uint64_t prompt = 0;
  std::uint64_t completion = 0;
  std::uint64_t cached = 0; // prompt tokens served from the provider's cache
};

// Reads prompt_tokens, completion_tokens and cached tokens: OpenAI's and
// GLM's prompt_tokens_details.cached_tokens or Kimi's top-level
// cached_tokens. Missing or malformed counts read 0.
TokenUsage token_usage(const nlohmann::json& usage);

// {"prompt","completion","cached"} for result metadata.
nlohmann::json to_json(const TokenUsage& usage);

// Totals of one provider and model since start-up.
struct UsageTotals {
  std::uint64_t calls = 0; // completions that reported usage
  TokenUsage tokens;
  std::optional<double> cost; // set when the model has a price
};

// (provider, model) -> totals.
using UsageSnapshot = std::map<std::pair<std::string, std::string>, UsageTotals>;

// Running totals per provider and model. Thread-safe.
class UsageMeter {
public:
  explicit UsageMeter(PriceTable prices = {})
      : prices_(std::move(prices))
  {
  }

  void record(std::string_view provider, std::string_view model, const TokenUsage& usage);
  UsageSnapshot snapshot() const;
  bool priced() const noexcept { return !prices_.empty(); }

private:
  const PriceTable prices_;
  mutable std::mutex mutex_;
  UsageSnapshot totals_; // guarded by mutex_
};

} // namespace exai::core
