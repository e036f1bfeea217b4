#pragma once

// The OpenAI chat-completions format as Kimi and GLM speak it, as pure code:
// the request body exai sends, the reply it reads, and what an error answer
// means for retries. No I/O (net/upstream does that), so every rule here is
// unit-tested directly.

#include "core/error.hpp"
#include "core/providers/chat.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace exai::core::openai {

// Base64 (standard alphabet, padded) of `bytes`: injected because core has no
// codec of its own (net passes Poco's).
using Base64Fn = std::function<std::string(std::string_view bytes)>;

// The JSON body of POST {base}/chat/completions for `request`. Images read
// from files are encoded with `base64`; without one they are refused
// (std::invalid_argument), never silently dropped.
std::string
chat_request_body(const ChatRequest& request, bool stream = false, const Base64Fn& base64 = {});

// A 2xx reply that cannot be used (not JSON, no choices).
struct ReplyProblem {
  std::string what; // "malformed JSON" | "no choices"
};

// Reads a 2xx reply body. A reply without a model names `requested_model`.
std::variant<ChatReply, ReplyProblem> parse_chat_reply(std::string_view body,
                                                       std::string_view requested_model);

// The "code" of an OpenAI/GLM error body ({"error":{"code":"1302",...}}), or
// "" when there is none.
std::string error_code(std::string_view body);

// What an HTTP error answer means.
struct ErrorClass {
  Errc code = Errc::provider_error;
  bool retryable = false;     // 429, 408, 5xx
  bool provider_fault = true; // counts against the circuit breaker
  std::string message;        // e.g. "GLM is at capacity (code 1302: ...)"
};

// Classifies a non-2xx answer of provider `display_name`: 429 is capacity
// (GLM's body code 1302: too many concurrent requests), 408 and 5xx are
// retried provider faults, other 4xx are the request's fault (401/403: the
// key). `upstream_code` is error_code(body).
ErrorClass
classify_status(int status, std::string_view display_name, std::string_view upstream_code);

} // namespace exai::core::openai
