#pragma once

// Calls a stopping daemon hands to the next one. A /mcp tools/call that a
// graceful stop refuses (SHUTTING_DOWN) before it ran is written to the state
// directory (mcp-handoff/<stream>.json, mode 0600) and its SSE stream stays
// open without a result; when the process exits the client resumes with
// Last-Event-ID, and the next daemon finds the call there, runs it and
// streams the result. A handoff is taken once, only by the same /mcp session,
// and expires after `ttl` (the result TTL): the tool arguments it holds are
// the caller's own, kept no longer than a stored result.

#include <nlohmann/json.hpp>

#include <chrono>
#include <optional>
#include <string>

namespace exai::net {

struct McpHandoff {
  std::string session_id; // the /mcp session (Mcp-Session-Id)
  std::string stream_key; // core::mcp::EventId::stream_key()
  nlohmann::json id;      // the JSON-RPC id
  nlohmann::json progress_token;
  std::string tool;
  nlohmann::json arguments;
};

class McpHandoffStore {
public:
  // `state_dir` empty: no handoffs (the calls fail with SHUTTING_DOWN).
  McpHandoffStore(const std::string& state_dir, std::chrono::milliseconds ttl);

  bool enabled() const noexcept { return !dir_.empty(); }

  // Writes `call`; false when it could not (the caller answers as before).
  bool put(const McpHandoff& call) const noexcept;

  // The call handed over for `stream_key` in `session_id`, removed from the
  // store; nullopt when there is none, it expired or belongs to another session.
  std::optional<McpHandoff> take(const std::string& stream_key,
                                 const std::string& session_id) const noexcept;

  // Removes expired handoffs (at start-up).
  void sweep() const noexcept;

private:
  std::string path_of(const std::string& stream_key) const;

  std::string dir_;
  std::chrono::milliseconds ttl_;
};

} // namespace exai::net
