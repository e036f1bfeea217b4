#pragma once

#include <cstddef>
#include <string>

namespace exai::core {

// `bytes` bytes from the kernel CSPRNG (getrandom). Throws
// Error(internal_error) only if the kernel cannot supply randomness.
std::string random_bytes(std::size_t bytes);

// random_bytes(bytes), hex-encoded: URL-safe, 2 * bytes characters.
// Continuation ids use 16 bytes (128 bits).
std::string random_hex(std::size_t bytes = 16);

} // namespace exai::core
