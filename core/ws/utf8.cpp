#include "core/ws/utf8.hpp"

#include <cstddef>
#include <cstring>

namespace exai::core::ws {

namespace {

constexpr std::uint64_t kHighBits = 0x8080808080808080ULL;

// Length of the ASCII run at the start of the `size` bytes at `begin`, eight
// bytes at a time.
std::size_t
ascii_prefix(const unsigned char* begin, std::size_t size) noexcept
{
  std::size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    std::uint64_t word = 0;
    std::memcpy(&word, begin + i, sizeof word);
    if ((word & kHighBits) != 0) {
      break;
    }
  }
  while (i < size && begin[i] < 0x80) {
    ++i;
  }
  return i;
}

} // namespace

bool
Utf8Validator::feed(std::string_view bytes) noexcept
{
  if (failed_) {
    return false;
  }
  const auto* data = reinterpret_cast<const unsigned char*>(bytes.data());
  const std::size_t size = bytes.size();
  std::size_t i = 0;
  while (i < size) {
    if (pending_ > 0) {
      const unsigned char byte = data[i++];
      if (byte < low_ || byte > high_) {
        failed_ = true;
        return false;
      }
      --pending_;
      low_ = 0x80;
      high_ = 0xBF;
      continue;
    }
    i += ascii_prefix(data + i, size - i);
    if (i == size) {
      break;
    }
    // A lead byte (Unicode 15, table 3-7). 80..BF cannot start a character;
    // C0, C1 only start overlongs; F5..FF would exceed U+10FFFF.
    const unsigned char lead = data[i++];
    if (lead < 0xC2 || lead > 0xF4) {
      failed_ = true;
      return false;
    }
    if (lead < 0xE0) {
      pending_ = 1;
    } else if (lead < 0xF0) {
      pending_ = 2;
      low_ = lead == 0xE0 ? 0xA0 : 0x80;  // E0 80..9F would be overlong
      high_ = lead == 0xED ? 0x9F : 0xBF; // ED A0..BF would be a surrogate
    } else {
      pending_ = 3;
      low_ = lead == 0xF0 ? 0x90 : 0x80;  // F0 80..8F would be overlong
      high_ = lead == 0xF4 ? 0x8F : 0xBF; // F4 90.. would exceed U+10FFFF
    }
  }
  return true;
}

bool
valid_utf8(std::string_view text) noexcept
{
  Utf8Validator validator;
  return validator.feed(text) && validator.complete();
}

} // namespace exai::core::ws
