#pragma once

// Is a complete HTTP request waiting on a socket? The event loops answer this
// from bytes they peek at (never consume) before any thread is committed to
// the request, so a client that trickles its request head or body holds no
// thread: only complete requests reach the HTTP threads (Poco parses them
// there). Parsing here is Poco's too (HTTPRequest::read); this file only
// finds the end of the head and reads the framing headers.

#include <Poco/Net/HTTPResponse.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace exai::net::http {

struct HeadCheck {
  enum class Status { incomplete, complete, too_large, malformed };
  Status status = Status::incomplete;
  std::size_t head_bytes = 0; // complete: up to and including the blank line
  std::optional<std::uint64_t> content_length;
  bool chunked = false;         // Transfer-Encoding: chunked (length unknown)
  bool expect_continue = false; // Expect: 100-continue
  bool upgrade = false;         // Upgrade: websocket
  std::string error;            // malformed: why, for the 400 body
};

// Inspects the start of a connection's input. `max_head_bytes` bounds the
// head (request line and headers): without a blank line within it the
// request is too_large. Never throws.
HeadCheck inspect_request_head(std::string_view bytes, std::size_t max_head_bytes) noexcept;

// A complete response with a JSON error body {"error":{"code","message"}} and
// "Connection: close", formatted by Poco, for answers the event loop gives
// itself (431, 400, 408, 503).
std::string error_response(Poco::Net::HTTPResponse::HTTPStatus status,
                           std::string_view code,
                           std::string_view message);

// "HTTP/1.1 100 Continue" and the blank line.
std::string continue_response();

} // namespace exai::net::http
