#pragma once

#include <string_view>

namespace exai::core {

// `text` without leading and trailing whitespace (std::isspace).
std::string_view trim(std::string_view text) noexcept;

} // namespace exai::core
