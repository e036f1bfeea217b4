// fuzz_mcp_session_id: the input is an Mcp-Session-Id header a client sends to
// /mcp. Verifying never throws or accepts a forgery, and a freshly issued id
// verifies to the version it carries.

#include "net/mcp/mcp_session_ids.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int
LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
  static const exai::net::McpSessionIds ids("");
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (ids.verify(text).has_value()) {
    std::abort(); // a random input cannot carry our signature
  }
  // Issued ids carry a negotiated version: printable ASCII only.
  const std::string_view claimed = text.substr(0, 32);
  if (claimed.find_first_not_of("0123456789abcdefghijklmnopqrstuvwxyz-.") !=
      std::string_view::npos) {
    return 0;
  }
  const auto version = ids.verify(ids.issue(claimed));
  if (!version || *version != claimed) {
    std::abort();
  }
  return 0;
}
