#pragma once

#include <cstddef>
#include <string>

namespace exai::core {

// `bytes` bytes from the kernel CSPRNG (getrandom), hex-encoded: URL-safe,
// 2 * bytes characters. Session and continuation ids use 16 bytes (128 bits).
std::string random_hex(std::size_t bytes = 16);

} // namespace exai::core
