#pragma once

#include "core/config/settings.hpp"

#include <string>
#include <string_view>

namespace exai::core {

// Parses dotenv text: `KEY=value` lines, optional `export ` prefix, blank
// lines and `#` comments, single quotes (literal) or double quotes (with
// \n \t \" \\ escapes), an inline `# comment` after whitespace in unquoted
// values, CRLF line ends and a leading UTF-8 BOM. A later duplicate key wins.
// Throws Error(config_invalid) naming `source` and the line for a line with no
// `=`, an invalid key, an unterminated quote or text after a closing quote.
Settings::Map parse_env_text(std::string_view text, std::string_view source);

// Reads and parses the file at `path`; an unreadable file is config_invalid.
Settings::Map read_env_file(const std::string& path);

} // namespace exai::core
