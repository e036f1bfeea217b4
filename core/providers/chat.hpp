#pragma once

#include "core/error.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace exai::core {

// An image sent with a user message: either a data: URL the client gave
// (passed through) or the bytes of a file, base64-encoded into a data: URL
// when the request body is built (net/ owns base64).
struct ChatImage {
  std::string mime;     // "image/png", "image/jpeg", "image/gif", "image/webp"
  std::string data_url; // set when the client sent a data: URL
  std::string bytes;    // set when read from a file
};

// A function call the model asked for (OpenAI tool_calls). `arguments` is the
// model's JSON text, kept verbatim.
struct ToolCall {
  std::string id;
  std::string type; // "function" | "builtin_function" (Kimi's $web_search)
  std::string name;
  std::string arguments;
};

// One OpenAI-style chat message ("system" | "user" | "assistant" | "tool").
struct ChatMessage {
  ChatMessage() = default;
  ChatMessage(std::string role_, std::string content_)
      : role(std::move(role_))
      , content(std::move(content_))
  {
  }

  std::string role;
  std::string content;
  std::vector<ChatImage> images;    // user messages only: sent as image_url parts
  std::vector<ToolCall> tool_calls; // assistant messages that asked for tools
  std::string tool_call_id;         // tool messages: which call this answers
  std::string name;                 // tool messages: the function's name
};

// One chat-completion call. `model` is the canonical catalog name.
struct ChatRequest {
  std::string model;
  std::vector<ChatMessage> messages;
  std::optional<double> temperature;
  std::optional<int> max_tokens;
  // OpenAI `tools` (array) and `tool_choice`; null/empty = not sent.
  nlohmann::json tools;
  std::string tool_choice;
  // Provider-specific body fields (e.g. GLM's "thinking"), merged as given;
  // computed in core/providers/provider_features.
  nlohmann::json extra = nlohmann::json::object();
  // The call's deadline (owned by the engine): every attempt and backoff of
  // the upstream client fits before it. No deadline by default.
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  // While a streamed answer arrives: called with its content so far after
  // each piece (on the backend's thread; must be quick and must not block).
  // Backends that do not stream never call it.
  std::function<void(std::string_view content)> on_partial;
};

// A successful completion. Fields missing from the upstream reply are left
// empty (model falls back to the requested model, usage to an empty object).
struct ChatReply {
  std::string content;
  std::string model;
  std::string finish_reason;
  nlohmann::json usage;
  std::vector<ToolCall> tool_calls;              // finish_reason "tool_calls"
  nlohmann::json web_search;                     // GLM's server-side search results, when sent
  std::chrono::milliseconds upstream_latency{0}; // duration of the successful attempt
  int attempts = 1;                              // 1 + retries
  bool streamed = false;                         // read as server-sent events
  // Streamed only: from sending the request to the first piece of the answer.
  std::optional<std::chrono::milliseconds> time_to_first_token;
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

// One provider's pool of kept-alive upstream connections, for health and
// metrics. Counters are monotonic since start-up.
struct UpstreamPoolStats {
  std::size_t idle = 0;            // connections waiting in the pool
  std::size_t leased = 0;          // connections carrying a request now
  std::size_t max_idle = 0;        // most idle connections kept
  std::uint64_t reused = 0;        // requests sent on a kept-alive connection
  std::uint64_t opened = 0;        // fresh connections (TCP, and TLS when https)
  std::uint64_t stale_retries = 0; // requests resent because a reused connection was dead

  // Two sets of connections counted as one.
  UpstreamPoolStats& operator+=(const UpstreamPoolStats& other) noexcept
  {
    idle += other.idle;
    leased += other.leased;
    max_idle += other.max_idle;
    reused += other.reused;
    opened += other.opened;
    stale_retries += other.stale_retries;
    return *this;
  }
};

// How an asynchronous model call ends (ChatBackend::start).
using ChatDone = std::function<void(ChatOutcome outcome)>;

// The model-call interface the tools use; net::UpstreamClient implements it
// over HTTP(S), tests may substitute their own.
class ChatBackend {
public:
  virtual ~ChatBackend() = default;

  // The same call without blocking, when this thread can carry one (in exai
  // serve: an event loop, whose transfer loop runs the exchanges). Returns
  // false, having started nothing, when it cannot; complete() is the way
  // then. Otherwise `done` runs exactly once, never inside start() itself:
  // on this thread once the outcome is known (cancelled within milliseconds
  // of `stop`), or in the loop's destructor at shutdown.
  virtual bool start(std::string_view /*provider_id*/,
                     ChatRequest /*request*/,
                     std::stop_token /*stop*/,
                     ChatDone /*done*/)
  {
    return false;
  }
  // Whether start() would take a call on this thread.
  virtual bool starts_here() const { return false; }

  // Blocking; returns promptly (<100 ms) after `stop` is requested, with code
  // cancelled. Thread-safe.
  virtual ChatOutcome
  complete(std::string_view provider_id, const ChatRequest& request, std::stop_token stop) = 0;

  // Circuit state per provider for health: "closed" | "open" | "half_open".
  virtual std::string circuit_state(std::string_view provider_id) const = 0;

  // Connection pool counters per provider; empty for a backend without a pool.
  virtual UpstreamPoolStats pool_stats(std::string_view /*provider_id*/) const { return {}; }
};

} // namespace exai::core
