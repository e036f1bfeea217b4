#pragma once

// Who may talk to the daemon: the shared token (constant-time compare,
// rotate_token) and the browser Origin allow-list (SPEC §8).

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace exai::net {

// Compares two secrets in time that depends only on their lengths, never on
// where they first differ.
bool constant_time_equal(std::string_view a, std::string_view b) noexcept;

// True when `origin` (an HTTP Origin header value) is a loopback origin —
// http(s)://127.0.0.1, localhost or [::1], any port — or is listed in
// `allowed` (compared case-insensitively, trailing '/' ignored). Requests
// without an Origin header are not browsers and are not checked here.
bool origin_allowed(std::string_view origin, const std::vector<std::string>& allowed);

// True when `host` names a loopback interface (127.0.0.0/8, ::1, localhost).
bool is_loopback_host(std::string_view host);

// True when an HTTP `Host` header value (host[:port]) names a loopback
// interface. A daemon bound to loopback answers only such requests, so a web
// page that rebinds its own domain to 127.0.0.1 (DNS rebinding) is refused.
bool loopback_host_header(std::string_view host_header);

enum class RotateResult { ok, unauthorized, missing_params, too_short };

// The wire word for `result`: "ok", "unauthorized", "missing_params", "too_short".
std::string_view rotate_result_name(RotateResult result) noexcept;

// The daemon's shared secret, in memory only. Thread-safe.
class TokenStore {
public:
  static constexpr std::size_t kMinTokenLength = 16;

  explicit TokenStore(std::string token)
      : token_(std::move(token))
  {
  }

  // True when a token is configured (clients must present it).
  bool required() const;

  // True when no token is configured, or `presented` equals it (constant time).
  bool accepts(std::string_view presented) const;

  // True when no token is configured, or `authorization` (an HTTP
  // Authorization header value) is "Bearer <token>". The one bearer check.
  bool accepts_bearer(std::string_view authorization) const;

  // rotate_token: only when a token is configured; `old_token` must equal it
  // and `new_token` must have at least kMinTokenLength characters. nullopt
  // means the parameter was absent or not a string. Every HTTP route and
  // new hello follows the new token at once.
  RotateResult rotate(std::optional<std::string_view> old_token,
                      std::optional<std::string_view> new_token);

  // Counts rotations: who authenticated under which token (reuse scope).
  std::uint64_t generation() const;

private:
  mutable std::mutex mutex_;
  std::uint64_t generation_ = 0; // guarded by mutex_
  std::string token_;            // guarded by mutex_
};

} // namespace exai::net
