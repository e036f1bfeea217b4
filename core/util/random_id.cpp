#include "core/util/random_id.hpp"

#include "core/error.hpp"

#include <sys/random.h>

#include <cerrno>

namespace exai::core {

std::string
random_bytes(std::size_t bytes)
{
  std::string buffer(bytes, '\0');
  std::size_t filled = 0;
  while (filled < bytes) {
    const ssize_t n = getrandom(buffer.data() + filled, bytes - filled, 0);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      throw Error(Errc::internal_error, "getrandom failed");
    }
    filled += static_cast<std::size_t>(n);
  }
  return buffer;
}

std::string
random_hex(std::size_t bytes)
{
  constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes * 2);
  for (const char c : random_bytes(bytes)) {
    const auto b = static_cast<unsigned char>(c);
    out += kDigits[b >> 4U];
    out += kDigits[b & 0x0FU];
  }
  return out;
}

} // namespace exai::core
