#pragma once

#include <cstdint>
#include <string_view>

namespace exai::core::ws {

// True when `text` is well-formed UTF-8 (RFC 3629): no overlong forms, no
// UTF-16 surrogates (U+D800..U+DFFF), nothing above U+10FFFF, no truncated
// sequence at the end. The empty string is valid.
bool valid_utf8(std::string_view text) noexcept;

// Checks UTF-8 that arrives in pieces (the fragments of a text message). A
// character may be split across pieces; feed() reports an error as soon as a
// byte makes the text invalid whatever follows, and complete() tells whether
// the text seen so far ends on a character boundary. Errors are sticky until
// reset(). Trivially copyable; not thread-safe.
class Utf8Validator {
public:
  // Adds `bytes`. False once the text can no longer be valid.
  bool feed(std::string_view bytes) noexcept;

  // True iff nothing was invalid and no character is left half-read.
  bool complete() const noexcept { return !failed_ && pending_ == 0; }

  // Forgets everything fed so far.
  void reset() noexcept { *this = Utf8Validator(); }

private:
  // The next continuation byte must lie in [low_, high_]: tighter than
  // 0x80..0xBF right after E0, ED, F0 and F4, which is what excludes
  // overlongs, surrogates and code points above U+10FFFF.
  std::uint8_t pending_ = 0; // continuation bytes still expected
  std::uint8_t low_ = 0x80;
  std::uint8_t high_ = 0xBF;
  bool failed_ = false;
};

} // namespace exai::core::ws
