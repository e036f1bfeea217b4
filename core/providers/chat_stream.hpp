#pragma once

// A streamed chat completion (`stream: true`) put back together: the SSE
// body's `data:` events merged into the same ChatReply the non-streamed
// answer gives — content, finish reason, tool calls (OpenAI's
// `delta.tool_calls` fragments merged by index), usage (top-level, as GLM's
// last chunk and OpenAI's include_usage chunk carry it, or inside the choice,
// as Kimi sends it), model and GLM's web_search. Pure code, fed arbitrary
// byte pieces; net/upstream reads the socket.

#include "core/providers/chat.hpp"
#include "core/providers/sse_parser.hpp"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace exai::core::openai {

// Why a stream gave no usable answer.
struct StreamProblem {
  enum class Kind {
    malformed,      // an event that is not a JSON object
    provider_error, // the provider sent an error event mid-stream
    incomplete,     // the body ended before [DONE] and before a finish reason
    too_large,      // one event exceeded the limit
    no_choices,     // [DONE] without any choice
  };
  Kind kind = Kind::malformed;
  std::string what;  // for messages: "malformed event", the provider's error message...
  std::string code;  // provider_error: the error's "code" ("1302"...), else ""
  std::string event; // provider_error / malformed: the event's data (for details)
};

class ChatStream {
public:
  // `general_only`: every event is read into a JSON tree, never by the
  // simple-chunk reader (the fuzz target compares the two readings).
  explicit ChatStream(std::string requested_model,
                      std::size_t max_event_bytes = std::size_t{16} << 20U,
                      bool general_only = false);

  // Feeds body bytes. False once the stream has failed; the caller stops
  // reading then. Events after [DONE] are ignored.
  bool feed(std::string_view bytes);

  // [DONE] arrived: the answer is complete (the body may still end after it).
  bool done() const noexcept { return done_; }
  bool failed() const noexcept { return problem_.has_value(); }

  // Something of the answer arrived (content, reasoning or a tool call).
  bool started() const noexcept { return started_; }
  // The content so far.
  const std::string& content() const noexcept { return content_; }
  // Grows with every piece of content, reasoning or tool call received.
  std::size_t received() const noexcept { return received_; }

  // At the end of the body: the reply, or why there is none. Consumes the
  // stream's state.
  std::variant<ChatReply, StreamProblem> finish();

private:
  void on_event(const sse::Event& event);
  void on_choice(const nlohmann::json& choice);
  void fail(StreamProblem::Kind kind, std::string what, std::string_view event = {});

  std::string requested_model_;
  sse::Parser parser_;
  std::string content_;
  std::string model_;
  std::string finish_reason_;
  nlohmann::json usage_ = nlohmann::json::object();
  nlohmann::json web_search_;
  std::map<long long, ToolCall> tool_calls_; // by the fragments' index
  std::optional<StreamProblem> problem_;
  std::size_t received_ = 0;
  bool saw_choice_ = false;
  bool started_ = false;
  bool done_ = false;
  bool general_only_ = false;
};

} // namespace exai::core::openai
