#include "core/util/text.hpp"

#include <cctype>

namespace exai::core {

std::string_view
trim(std::string_view text) noexcept
{
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front())) != 0) {
    text.remove_prefix(1);
  }
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())) != 0) {
    text.remove_suffix(1);
  }
  return text;
}

} // namespace exai::core
