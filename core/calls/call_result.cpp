#include "core/calls/call_result.hpp"

namespace exai::core {

std::size_t
result_bytes(const ToolResult& result) noexcept
{
  // Approximate: the payload strings plus a fixed overhead per item. Details
  // are small JSON objects; their size is estimated, not dumped.
  constexpr std::size_t kOverhead = 64;
  if (const auto* success = std::get_if<ToolSuccess>(&result)) {
    std::size_t bytes = kOverhead;
    for (const auto& text : success->outputs) {
      bytes += text.size() + kOverhead;
    }
    return bytes;
  }
  const auto& failure = std::get<ToolFailure>(result);
  return kOverhead * 4 + failure.message.size();
}

} // namespace exai::core
