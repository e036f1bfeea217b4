#pragma once

#include "core/error.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace exai::core {

// One OpenAI-style chat message ("system" | "user" | "assistant").
struct ChatMessage {
  std::string role;
  std::string content;
};

// One chat-completion call. `model` is the canonical catalog name.
struct ChatRequest {
  std::string model;
  std::vector<ChatMessage> messages;
  std::optional<double> temperature;
  std::optional<int> max_tokens;
  // The call's deadline (owned by the engine): every attempt and backoff of
  // the upstream client fits before it. No deadline by default.
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
};

// A successful completion. Fields missing from the upstream reply are left
// empty (model falls back to the requested model, usage to an empty object).
struct ChatReply {
  std::string content;
  std::string model;
  std::string finish_reason;
  nlohmann::json usage;
  std::chrono::milliseconds upstream_latency{0}; // duration of the successful attempt
  int attempts = 1;                              // 1 + retries
};

// A failed completion. `code` is one of: provider_error (upstream said no:
// 4xx/5xx after retries, malformed reply), provider_unavailable (circuit
// open, unreachable, TLS failure), over_capacity (GLM 1302 / 429 after
// retries), cancelled (stop requested), timeout (upstream read timeout).
// `details` carries e.g. {"provider", "status", "body" (truncated), "attempts"}.
// Never contains an API key.
struct ChatFailure {
  Errc code;
  std::string message;
  nlohmann::json details;
};

using ChatOutcome = std::variant<ChatReply, ChatFailure>;

// The model-call interface the tools use; net::UpstreamClient implements it
// over HTTP(S), tests may substitute their own.
class ChatBackend {
public:
  virtual ~ChatBackend() = default;

  // Blocking; returns promptly (<100 ms) after `stop` is requested, with code
  // cancelled. Thread-safe.
  virtual ChatOutcome
  complete(std::string_view provider_id, const ChatRequest& request, std::stop_token stop) = 0;

  // Circuit state per provider for health: "closed" | "open" | "half_open".
  virtual std::string circuit_state(std::string_view provider_id) const = 0;
};

} // namespace exai::core
