#pragma once

// Durable /mcp session ids: any daemon of this install can re-adopt a session
// it never saw (after a restart, or after the session idled out of memory),
// because the id itself carries what the session negotiated and is signed.
//
//   id = <payload> "." <HMAC-SHA256(secret, payload), hex>
//   payload = base64url({"v": protocol version, "n": random nonce, "t": issued unix secs})
//
// The secret is per install: `mcp-session.key` in the state directory, mode
// 0600, created on first use. Without a state directory the secret lives in
// memory and ids survive idleness but not a restart. An id ended by DELETE is
// revoked: remembered (in `mcp-revoked` next to the key, bounded) so that no
// daemon re-adopts it.

#include <cstddef>
#include <deque>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace exai::net {

class McpSessionIds {
public:
  // Revoked ids kept at most; beyond it some are forgotten (a revoked id is
  // only ever presented again by the client that ended it).
  static constexpr std::size_t kMaxRevoked = 10000;

  // `state_dir` empty: an in-memory secret. Throws core::Error(config_invalid)
  // when the key file exists but is unreadable or malformed.
  explicit McpSessionIds(const std::string& state_dir);

  // A new signed id for a session that negotiated `protocol_version`.
  std::string issue(std::string_view protocol_version) const;

  // The negotiated version an id carries when its signature is ours and it
  // was not revoked; nullopt otherwise.
  std::optional<std::string> verify(std::string_view id) const;

  // Ends an id for good (DELETE /mcp): verify() refuses it from now on.
  // Only in memory: persist() writes it down. Thread-safe.
  void revoke(std::string_view id);

  // Writes the ids revoked since the last call to the revocation file, for
  // other daemons of the install. File I/O: call it outside locks others
  // wait on (a slow disk must stall only the DELETE that revoked). Thread-safe.
  void persist();

private:
  std::string sign(std::string_view payload) const;

  std::string secret_;
  std::string revoked_path_; // empty: not persisted
  mutable std::mutex mutex_;
  std::set<std::string> revoked_;      // guarded by mutex_ (signatures)
  std::deque<std::string> order_;      // guarded by mutex_: revoked_, oldest first
  std::vector<std::string> unwritten_; // guarded by mutex_: revoked, not yet in the file
  bool rewrite_ = false;               // guarded by mutex_: the file must be written anew
  std::mutex file_mutex_;              // one writer of the file at a time
};

} // namespace exai::net
