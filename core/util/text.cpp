#include "core/util/text.hpp"

#include <algorithm>
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

namespace exai::core {

std::string
printable(std::string_view text, std::size_t max_bytes)
{
  std::size_t cut = std::min(text.size(), max_bytes);
  // Back up over UTF-8 continuation bytes so no character is split.
  while (cut > 0 && cut < text.size() && (static_cast<unsigned char>(text[cut]) & 0xC0U) == 0x80U) {
    --cut;
  }
  std::string out;
  out.reserve(cut + 24);
  for (const char c : text.substr(0, cut)) {
    const auto byte = static_cast<unsigned char>(c);
    out += (byte < 0x20 || byte == 0x7F) ? '?' : c;
  }
  if (cut < text.size()) {
    out += "…(+" + std::to_string(text.size() - cut) + " bytes)";
  }
  return out;
}

std::string
short_id(std::string_view id)
{
  constexpr std::size_t kShown = 6;
  if (id.size() <= kShown) {
    return printable(id, kShown);
  }
  return printable(id.substr(0, kShown), kShown) + "…";
}

} // namespace exai::core
