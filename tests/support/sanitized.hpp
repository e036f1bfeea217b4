#pragma once

// Whether this build runs under a sanitizer (CMake's EXAI_SANITIZERS, which
// defines EXAI_SANITIZED with either compiler: clang-14 does not define GCC's
// __SANITIZE_ADDRESS__). Their allocators keep freed memory and they slow
// everything down, so tests relax or skip their RSS and latency bounds.

namespace exai::test {

#ifdef EXAI_SANITIZED
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif

} // namespace exai::test
