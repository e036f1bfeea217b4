#pragma once

// The wire words of small enums, written once as a table in enumerator order.
// Enums that name themselves on the wire are dense and start at zero; a value
// outside the table (a cast from a corrupted integer) answers the fallback
// rather than reading past the end.

#include <array>
#include <cstddef>
#include <string_view>

namespace exai::core {

template <typename Enum, std::size_t N> struct EnumNames {
  std::array<std::string_view, N> words;
  std::string_view fallback;

  constexpr std::string_view operator()(Enum value) const noexcept
  {
    const auto index = static_cast<std::size_t>(value);
    return index < N ? words[index] : fallback;
  }
};

} // namespace exai::core
