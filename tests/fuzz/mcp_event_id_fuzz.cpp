// fuzz_mcp_event_id: the input is a Last-Event-ID header a client sends to
// resume a /mcp stream. Parsing never throws, and whatever parses prints back
// to an id that parses to the same event.

#include "core/mcp/mcp_event_id.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

namespace mcp = exai::core::mcp;

extern "C" int
LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto parsed = mcp::parse_event_id(text);
  if (!parsed) {
    return 0;
  }
  const auto again = mcp::parse_event_id(parsed->text());
  if (!again || again->instance != parsed->instance || again->stream != parsed->stream ||
      again->seq != parsed->seq || again->request_id != parsed->request_id) {
    std::abort();
  }
  return 0;
}
