#include "core/providers/token_usage.hpp"

#include <algorithm>

namespace exai::core {

namespace {

std::uint64_t
count(const nlohmann::json& object, const char* key)
{
  if (!object.is_object()) {
    return 0;
  }
  const auto it = object.find(key);
  if (it == object.end()) {
    return 0;
  }
  if (it->is_number_unsigned()) {
    return it->get<std::uint64_t>();
  }
  if (it->is_number_integer() && it->get<std::int64_t>() > 0) {
    return static_cast<std::uint64_t>(it->get<std::int64_t>());
  }
  return 0;
}

} // namespace

TokenUsage
token_usage(const nlohmann::json& usage)
{
  TokenUsage tokens;
  tokens.prompt = count(usage, "prompt_tokens");
  tokens.completion = count(usage, "completion_tokens");
  tokens.cached = count(usage, "cached_tokens"); // Kimi
  if (usage.is_object()) {
    if (const auto details = usage.find("prompt_tokens_details"); details != usage.end()) {
      tokens.cached = std::max(tokens.cached, count(*details, "cached_tokens"));
    }
  }
  return tokens;
}

nlohmann::json
to_json(const TokenUsage& usage)
{
  return {{"prompt", usage.prompt}, {"completion", usage.completion}, {"cached", usage.cached}};
}

void
UsageMeter::record(std::string_view provider, std::string_view model, const TokenUsage& usage)
{
  const auto price = prices_.find(model);
  const std::lock_guard lock(mutex_);
  UsageTotals& totals = totals_[{std::string(provider), std::string(model)}];
  ++totals.calls;
  totals.tokens.prompt += usage.prompt;
  totals.tokens.completion += usage.completion;
  totals.tokens.cached += usage.cached;
  if (price != prices_.end()) {
    totals.cost = totals.cost.value_or(0) + cost_of(price->second, usage.prompt, usage.completion);
  }
}

UsageSnapshot
UsageMeter::snapshot() const
{
  const std::lock_guard lock(mutex_);
  return totals_;
}

} // namespace exai::core
