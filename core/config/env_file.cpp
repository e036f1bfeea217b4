#include "core/config/env_file.hpp"

#include "core/error.hpp"
#include "core/util/text.hpp"

#include <cctype>
#include <fstream>
#include <sstream>

namespace exai::core {

namespace {

constexpr std::string_view kBom = "\xEF\xBB\xBF";

bool
valid_key(std::string_view key)
{
  if (key.empty() || (std::isdigit(static_cast<unsigned char>(key.front())) != 0)) {
    return false;
  }
  for (const char c : key) {
    if ((std::isalnum(static_cast<unsigned char>(c)) == 0) && c != '_' && c != '.') {
      return false;
    }
  }
  return true;
}

[[noreturn]] void
fail(std::string_view source, std::size_t line, std::string_view what)
{
  throw Error(Errc::config_invalid,
              "env file " + std::string(source) + " line " + std::to_string(line) + ": " +
                  std::string(what));
}

// The value after `=`; `line_no` and `source` only feed error messages.
std::string
parse_value(std::string_view raw, std::string_view source, std::size_t line_no)
{
  const std::string_view text = trim(raw);
  if (text.empty()) {
    return {};
  }
  const char quote = text.front();
  if (quote != '"' && quote != '\'') {
    // Unquoted: `#` starts a comment only after whitespace, so URLs with
    // fragments and tokens containing '#' survive.
    std::size_t cut = text.size();
    for (std::size_t i = 1; i < text.size(); ++i) {
      if (text[i] == '#' && (text[i - 1] == ' ' || text[i - 1] == '\t')) {
        cut = i;
        break;
      }
    }
    return std::string(trim(text.substr(0, cut)));
  }
  std::string value;
  std::size_t i = 1;
  bool closed = false;
  for (; i < text.size(); ++i) {
    const char c = text[i];
    if (c == quote) {
      closed = true;
      ++i;
      break;
    }
    if (quote == '"' && c == '\\' && i + 1 < text.size()) {
      const char next = text[++i];
      switch (next) {
      case 'n':
        value += '\n';
        break;
      case 't':
        value += '\t';
        break;
      default:
        value += next;
      }
      continue;
    }
    value += c;
  }
  if (!closed) {
    fail(source, line_no, "unterminated quote");
  }
  const std::string_view rest = trim(text.substr(i));
  if (!rest.empty() && rest.front() != '#') {
    fail(source, line_no, "unexpected text after closing quote");
  }
  return value;
}

} // namespace

Settings::Map
parse_env_text(std::string_view text, std::string_view source)
{
  if (text.substr(0, kBom.size()) == kBom) {
    text.remove_prefix(kBom.size());
  }
  Settings::Map values;
  std::size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    const auto newline = text.find('\n');
    std::string_view line = text.substr(0, newline);
    text.remove_prefix(newline == std::string_view::npos ? text.size() : newline + 1);
    if (!line.empty() && line.back() == '\r') {
      line.remove_suffix(1);
    }
    line = trim(line);
    if (line.empty() || line.front() == '#') {
      continue;
    }
    if (line.substr(0, 7) == "export ") {
      line = trim(line.substr(7));
    }
    const auto eq = line.find('=');
    if (eq == std::string_view::npos) {
      fail(source, line_no, "expected KEY=value");
    }
    const std::string_view key = trim(line.substr(0, eq));
    if (!valid_key(key)) {
      fail(source, line_no, "invalid variable name '" + std::string(key) + "'");
    }
    values.insert_or_assign(std::string(key), parse_value(line.substr(eq + 1), source, line_no));
  }
  return values;
}

Settings::Map
read_env_file(const std::string& path)
{
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw Error(Errc::config_invalid, "env file " + path + ": cannot be read");
  }
  std::ostringstream content;
  content << in.rdbuf();
  return parse_env_text(content.str(), path);
}

} // namespace exai::core
