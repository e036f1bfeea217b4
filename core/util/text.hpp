#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace exai::core {

// `text` without leading and trailing whitespace (std::isspace).
std::string_view trim(std::string_view text) noexcept;

// `text` made safe for one log line: at most `max_bytes` (cut at a UTF-8
// character boundary, then "…(+N bytes)"), control characters as '?'. For
// strings a client controls (client names, request ids, messages quoting
// input): never log them unbounded.
std::string printable(std::string_view text, std::size_t max_bytes);

// The first 6 characters of an identifier and "…": enough to correlate log
// lines, never enough to use (a full session id lets a client join it).
std::string short_id(std::string_view id);

} // namespace exai::core
