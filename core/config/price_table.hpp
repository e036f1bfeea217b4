#pragma once

// What calls cost: a price per million input and output tokens per model,
// from EXAI_PRICES ("model:in:out,model:in:out", e.g.
// "glm-4.5:0.6:2.2,kimi-k2-0905-preview:0.6:2.5"; any currency, the same for
// all). Cached prompt tokens are priced as input: providers bill them lower,
// so the figure is an upper bound.

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace exai::core {

struct ModelPrice {
  double input_per_million = 0;
  double output_per_million = 0;
};

using PriceTable = std::map<std::string, ModelPrice, std::less<>>;

// Parses an EXAI_PRICES value ("" = no table). Throws Error(config_invalid)
// naming the variable, the entry and the rule: three fields, a model name,
// finite non-negative numbers, no model twice.
PriceTable parse_price_table(std::string_view text, std::string_view variable = "EXAI_PRICES");

// The cost of `prompt` input and `completion` output tokens at `price`.
double cost_of(const ModelPrice& price, std::uint64_t prompt, std::uint64_t completion);

} // namespace exai::core
