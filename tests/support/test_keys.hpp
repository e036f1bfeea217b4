#pragma once

// The provider keys the end-to-end fixtures give `exai serve`; tests search
// for them in output that must never hold a key.

namespace exai::test {

inline constexpr const char* kKimiTestKey = "kimi-e2e-key-0123456789";
inline constexpr const char* kGlmTestKey = "glm-e2e-key-0123456789";

} // namespace exai::test
