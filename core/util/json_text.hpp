#pragma once

// Parsing JSON that a client sent. nlohmann's parser is iterative, but a
// document nested 75,000 levels deep overflows the stack later, in every
// recursive walk (dump(), comparisons, our own code). So nesting is capped
// before anything is built, and the cap is part of the input contract.

#include <nlohmann/json.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace exai::core {

// Deepest nesting of arrays and objects accepted from a client.
inline constexpr std::size_t kMaxJsonDepth = 64;

struct JsonProblem {
  enum class Kind { not_json, too_deep };
  Kind kind = Kind::not_json;
  std::string message; // names the rule, e.g. "JSON nesting deeper than 64 levels"
};

// Parses `text` when its nesting stays within `max_depth`. Never throws:
// malformed input (including numbers out of range, e.g. 1e400) and
// over-deep input are values.
std::variant<nlohmann::json, JsonProblem> parse_json(std::string_view text,
                                                     std::size_t max_depth = kMaxJsonDepth);

// True when `text` nests arrays and objects deeper than `max_depth` (strings
// are skipped correctly). Linear, allocation-free.
bool nesting_exceeds(std::string_view text, std::size_t max_depth) noexcept;

// The value of the top-level member `key` of the JSON object in `text` when
// it is a string, found by scanning without building the document: how a
// frame that could not be parsed is still answered with its request_id.
// nullopt when `text` is not an object, has no such member, or it is not a
// string.
std::optional<std::string> top_level_string(std::string_view text, std::string_view key);

// The raw JSON text of the top-level member `key`'s value (any type), found
// the same way: a few members of a large document without building it.
std::optional<std::string_view> top_level_member(std::string_view text, std::string_view key);

} // namespace exai::core
