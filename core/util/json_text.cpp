#include "core/util/json_text.hpp"

#include <cctype>

namespace exai::core {

namespace {

// Index just past the string token that starts at text[i] == '"', or npos
// when it never ends.
std::size_t
skip_string(std::string_view text, std::size_t i) noexcept
{
  for (++i; i < text.size(); ++i) {
    if (text[i] == '\\') {
      ++i; // the escaped character
    } else if (text[i] == '"') {
      return i + 1;
    }
  }
  return std::string_view::npos;
}

std::size_t
skip_space(std::string_view text, std::size_t i) noexcept
{
  while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i])) != 0) {
    ++i;
  }
  return i;
}

} // namespace

bool
nesting_exceeds(std::string_view text, std::size_t max_depth) noexcept
{
  std::size_t depth = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '"') {
      const std::size_t end = skip_string(text, i);
      if (end == std::string_view::npos) {
        return false; // unterminated: the parser reports it
      }
      i = end - 1;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) {
        return true;
      }
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return false;
}

std::variant<nlohmann::json, JsonProblem>
parse_json(std::string_view text, std::size_t max_depth)
{
  if (nesting_exceeds(text, max_depth)) {
    return JsonProblem{JsonProblem::Kind::too_deep,
                       "JSON nesting deeper than " + std::to_string(max_depth) + " levels"};
  }
  nlohmann::json value = nlohmann::json::parse(text.begin(), text.end(), nullptr, false);
  if (value.is_discarded()) {
    return JsonProblem{JsonProblem::Kind::not_json, "not valid JSON (RFC 8259)"};
  }
  return value;
}

std::optional<std::string_view>
top_level_member(std::string_view text, std::string_view key)
{
  std::size_t i = skip_space(text, 0);
  if (i >= text.size() || text[i] != '{') {
    return std::nullopt;
  }
  ++i;
  std::size_t depth = 1;
  bool expect_key = true;                     // at depth 1: the next string is a member name
  bool matched = false;                       // the member just named is `key`
  std::size_t value = std::string_view::npos; // where the matched member's value starts
  const auto value_until = [&](std::size_t end) {
    while (end > value && std::isspace(static_cast<unsigned char>(text[end - 1])) != 0) {
      --end;
    }
    return text.substr(value, end - value);
  };
  while (i < text.size()) {
    const char c = text[i];
    if (matched && value == std::string_view::npos && c != ':' &&
        std::isspace(static_cast<unsigned char>(c)) == 0) {
      value = i;
    }
    if (c == '"') {
      const std::size_t end = skip_string(text, i);
      if (end == std::string_view::npos) {
        return std::nullopt;
      }
      if (depth == 1 && expect_key) {
        const std::string_view token = text.substr(i + 1, end - i - 2);
        // Names with escapes are rare: only they pay for a parse.
        if (token.find('\\') == std::string_view::npos) {
          matched = token == key;
        } else {
          const auto name = nlohmann::json::parse(text.substr(i, end - i), nullptr, false);
          matched = name.is_string() && name.get_ref<const std::string&>() == key;
        }
        expect_key = false;
      } else if (depth == 1 && matched) {
        return text.substr(value, end - value); // a string value
      }
      i = end;
      continue;
    }
    if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      --depth;
      if (depth == 0) {
        return matched && value != std::string_view::npos ? std::optional(value_until(i))
                                                          : std::nullopt;
      }
      if (depth == 1 && matched) {
        return text.substr(value, i + 1 - value); // an object or array value
      }
    } else if (c == ',' && depth == 1) {
      if (matched && value != std::string_view::npos) {
        return value_until(i); // a number or literal
      }
      expect_key = true;
      matched = false;
    }
    ++i;
  }
  return std::nullopt;
}

std::optional<std::string>
top_level_string(std::string_view text, std::string_view key)
{
  const auto raw = top_level_member(text, key);
  if (!raw || raw->empty() || raw->front() != '"') {
    return std::nullopt;
  }
  auto value = nlohmann::json::parse(*raw, nullptr, false);
  if (!value.is_string()) {
    return std::nullopt;
  }
  return std::move(value.get_ref<std::string&>());
}

} // namespace exai::core
