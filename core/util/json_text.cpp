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

std::optional<std::string>
top_level_string(std::string_view text, std::string_view key)
{
  std::size_t i = skip_space(text, 0);
  if (i >= text.size() || text[i] != '{') {
    return std::nullopt;
  }
  ++i;
  std::size_t depth = 1;
  bool expect_key = true; // at depth 1: the next string is a member name
  bool matched = false;   // the member just named is `key`
  while (i < text.size()) {
    const char c = text[i];
    if (c == '"') {
      const std::size_t end = skip_string(text, i);
      if (end == std::string_view::npos) {
        return std::nullopt;
      }
      const std::string_view token = text.substr(i, end - i);
      if (depth == 1) {
        if (expect_key) {
          const auto name = nlohmann::json::parse(token, nullptr, false);
          matched = name.is_string() && name.get_ref<const std::string&>() == key;
          expect_key = false;
        } else if (matched) {
          const auto value = nlohmann::json::parse(token, nullptr, false);
          if (value.is_string()) {
            return value.get<std::string>();
          }
          return std::nullopt;
        }
      }
      i = end;
      continue;
    }
    if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      if (--depth == 0) {
        return std::nullopt;
      }
    } else if (c == ',' && depth == 1) {
      expect_key = true;
      matched = false;
    } else if (depth == 1 && !expect_key && matched && c != ':' &&
               std::isspace(static_cast<unsigned char>(c)) == 0) {
      return std::nullopt; // the value is not a string
    }
    ++i;
  }
  return std::nullopt;
}

} // namespace exai::core
