// fuzz_env_file: the input is an env file (`--env-file`, `.env`). Parses it;
// a malformed file must be a config_invalid Error, never anything else.

#include "core/config/env_file.hpp"
#include "core/error.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int
LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const auto values = exai::core::parse_env_text(text, "fuzz.env");
    for (const auto& [key, value] : values) {
      if (key.empty() || key.find('=') != std::string::npos) {
        std::abort();
      }
    }
  } catch (const exai::core::Error& e) {
    if (e.code() != exai::core::Errc::config_invalid) {
      std::abort();
    }
  }
  return 0;
}
