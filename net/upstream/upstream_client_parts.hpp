#pragma once

// UpstreamClient's inner parts, shared by its blocking path
// (upstream_client.cpp) and its path on a transfer loop (upstream_async.cpp):
// the provider's state, what one exchange produced, and what it means for
// the call. Not for other users.

#include "core/providers/chat_stream.hpp"
#include "net/upstream/upstream_client.hpp"

#include <Poco/Net/Context.h>
#include <Poco/Net/Session.h>

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace exai::net {

namespace upstream_detail {

// Image bytes for data: URLs (standard alphabet, padded, no line breaks).
std::string base64(std::string_view bytes);
std::chrono::milliseconds since(std::chrono::steady_clock::time_point start);
// Replaces every occurrence of `secret` in `text` (no-op for an empty secret).
std::string scrub(std::string text, const std::string& secret);
// `text` cut to `limit` bytes, saying how long it was.
std::string truncate(const std::string& text, std::size_t limit);

} // namespace upstream_detail

struct UpstreamClient::Provider {
  Provider(UpstreamEndpoint e, const UpstreamOptions& options)
      : endpoint(std::move(e))
      , breaker(options.circuit, options.clock)
      , pool(ConnectionPool::Options{endpoint.pool_size, options.idle_timeout, options.pool_clock})
  {
  }

  UpstreamEndpoint endpoint;
  bool https = false;
  std::string host;
  std::uint16_t port = 0;
  std::string path_prefix;         // e.g. "/v1"
  std::string chat_url;            // scheme://host:port/prefix/chat/completions (transfer loops)
  std::string authorization;       // "Authorization: Bearer <key>" (transfer loops)
  Poco::Net::Context::Ptr context; // HTTPS only; Poco's Context is thread-safe to share
  mutable core::CircuitBreaker breaker;
  ConnectionPool pool;
  std::mutex tls_mutex;
  Poco::Net::Session::Ptr tls_session; // guarded by tls_mutex; fresh connections resume it
};

// What one HTTP exchange produced.
struct UpstreamClient::Attempt {
  enum class Kind {
    response,
    connect_error,
    truncated,
    read_timeout,
    tls_error,
    cancelled,
    stale,   // a reused connection died before any answer byte: resend on a fresh one
    stalled, // a streamed answer went silent for the stall timeout
  };
  Kind kind = Kind::connect_error;
  int status = 0;
  std::string body;
  std::string retry_after;
  std::map<std::string, std::string> headers; // of the answer, names lower-cased
  std::string error;                          // already scrubbed
  std::chrono::milliseconds latency{0};
  // A 2xx event-stream answer, assembled (then `body` stays empty).
  std::optional<std::variant<core::ChatReply, core::openai::StreamProblem>> streamed;
  std::optional<std::chrono::milliseconds>
      first_token;               // from sending to the first piece of the answer
  bool stream_abandoned = false; // stopped reading midway: connection unusable
};

// What one attempt means for the call: its reply, or why not and whether
// to try again.
struct UpstreamClient::Verdict {
  std::optional<core::ChatReply> reply;
  core::Errc code = core::Errc::provider_error;
  std::string message;
  bool retryable = false;
  bool provider_fault = true;
  std::optional<std::chrono::milliseconds> retry_after;
};

} // namespace exai::net
