#include "core/config/price_table.hpp"

#include "core/error.hpp"
#include "core/util/text.hpp"

#include <array>
#include <charconv>
#include <cmath>
#include <vector>

namespace exai::core {

namespace {

std::vector<std::string_view>
split(std::string_view text, char separator)
{
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  while (true) {
    const auto end = text.find(separator, start);
    parts.push_back(trim(text.substr(start, end - start)));
    if (end == std::string_view::npos) {
      return parts;
    }
    start = end + 1;
  }
}

} // namespace

PriceTable
parse_price_table(std::string_view text, std::string_view variable)
{
  PriceTable table;
  const auto invalid = [&](std::string_view entry, const std::string& rule) {
    throw Error(Errc::config_invalid,
                "invalid " + std::string(variable) + " entry '" + std::string(entry) +
                    "': " + rule + " (format: model:input_per_1M:output_per_1M[,...])");
  };
  for (const auto entry : split(text, ',')) {
    if (entry.empty()) {
      continue;
    }
    const auto fields = split(entry, ':');
    if (fields.size() != 3) {
      invalid(entry, "expected three fields separated by ':'");
    }
    if (fields[0].empty()) {
      invalid(entry, "the model name is empty");
    }
    std::array<double, 2> prices{};
    for (std::size_t i = 0; i < 2; ++i) {
      const std::string_view number = fields[i + 1];
      const auto [end, ec] =
          std::from_chars(number.data(), number.data() + number.size(), prices[i]);
      if (number.empty() || ec != std::errc() || end != number.data() + number.size() ||
          !std::isfinite(prices[i]) || prices[i] < 0) {
        invalid(entry,
                std::string(i == 0 ? "input" : "output") + " price '" + std::string(number) +
                    "' is not a non-negative number");
      }
    }
    if (!table.emplace(std::string(fields[0]), ModelPrice{prices[0], prices[1]}).second) {
      invalid(entry, "model '" + std::string(fields[0]) + "' is priced twice");
    }
  }
  return table;
}

double
cost_of(const ModelPrice& price, std::uint64_t prompt, std::uint64_t completion)
{
  return (static_cast<double>(prompt) * price.input_per_million +
          static_cast<double>(completion) * price.output_per_million) /
         1e6;
}

} // namespace exai::core
