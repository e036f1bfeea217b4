#pragma once

// Interface sketch; the implementation lands with the serve issue.

#include "core/calls/call_sink.hpp"

#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <string_view>

namespace exai::core {

// One `call_tool` as the client sent it (tool-name suffixes already stripped).
struct CallRequest {
  std::string request_id;
  std::string tool;
  nlohmann::json arguments = nlohmann::json::object();
  std::string session_id;
};

// Runs tool calls under capacity control and owns every outcome: each
// accepted submit() produces exactly one call_tool_res on the sink (success,
// failure, timeout, cancellation, shutdown), preceded by the progress /
// call_tool_ack frames of SPEC §2. Thread-safe.
class CallEngine {
public:
  CallEngine() = default;
  CallEngine(const CallEngine&) = delete;
  CallEngine& operator=(const CallEngine&) = delete;
  CallEngine(CallEngine&&) = delete;
  CallEngine& operator=(CallEngine&&) = delete;
  virtual ~CallEngine() = default;

  // Starts `request`; all frames go to `sink` (held weakly). Never blocks on
  // capacity or the provider: waiting happens on engine threads.
  virtual void submit(CallRequest request, const std::shared_ptr<CallSink>& sink) = 0;

  // cancel_tool: stops the call `request_id` of `session_id` (its result is
  // CANCELLED). Returns false when no such call is running.
  virtual bool cancel(std::string_view session_id, std::string_view request_id) = 0;

  // A client (re)attached to `session_id` (hello with a known session id):
  // results of that session's calls that finished while it was away, and
  // frames of its still-running calls, go to `sink` from now on.
  virtual void attach_session(const std::string& session_id,
                              const std::shared_ptr<CallSink>& sink) = 0;

  // The `tools` array of list_tools_res, in name order.
  virtual nlohmann::json list_tools() const = 0;
};

} // namespace exai::core
