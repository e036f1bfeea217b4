#pragma once

// SSE event ids of /mcp tools/call streams, and the Last-Event-ID a client
// resumes with: "<instance>.<stream>.<seq>.<request id, hex of its JSON>".
// The instance names one daemon process, so an id from before a restart is
// recognised as such; the request id lets even a daemon that never saw the
// call answer it (with an isError result) instead of leaving the client
// waiting. Parsing is client input: bounded and never throws.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace exai::core::mcp {

struct EventId {
  std::string instance; // [0-9a-f]{1,32}
  std::uint64_t stream = 0;
  std::uint64_t seq = 0;     // 0: the priming event
  nlohmann::json request_id; // string or integer

  std::string text() const;
  // "<instance>.<stream>": the stream this event belongs to.
  std::string stream_key() const;
};

// Longest Last-Event-ID accepted.
inline constexpr std::size_t kMaxEventIdBytes = 600;

std::optional<EventId> parse_event_id(std::string_view text);

} // namespace exai::core::mcp
