#pragma once

#include "core/calls/call_sink.hpp"
#include "core/util/interface.hpp"

#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace exai::core {

// One `call_tool` as the client sent it (tool-name suffixes already stripped).
struct CallRequest {
  std::string request_id;
  std::string tool;
  nlohmann::json arguments = nlohmann::json::object();
  // The session the call belongs to. Request ids are the session's own:
  // running and stored calls are keyed by (session, request_id), so another
  // session's id is simply another call.
  std::string session_id;
  // Who authenticated the session (the token generation); the reuse scope
  // `token` shares identical calls among sessions with the same owner.
  std::string owner;
};

// Runs tool calls under capacity control and owns every outcome: each
// accepted submit() produces exactly one result event on the sink (success,
// failure, timeout, cancellation, shutdown), preceded by the progress and
// acknowledgement events of SPEC §2. Thread-safe.
class CallEngine : public Interface {
public:
  // Starts `request`; its events go to `sink` (held weakly). Never blocks on
  // capacity or the provider: a call waiting for capacity holds no thread.
  virtual void submit(CallRequest request, const std::shared_ptr<CallSink>& sink) = 0;

  // cancel_tool: stops the call `request_id` of `session_id` (its result is
  // CANCELLED). Returns false when no such call is running.
  virtual bool cancel(std::string_view session_id, std::string_view request_id) = 0;

  // A client (re)attached to `session_id` (hello with a known session id):
  // results of that session's calls that finished while it was away, and
  // the events of its still-running calls, go to `sink` from now on.
  virtual void attach_session(const std::string& session_id,
                              const std::shared_ptr<CallSink>& sink) = 0;

  // A sink lost its connection with these results taken but never sent:
  // they stay stored for `session_id` to collect when it resumes.
  virtual void undelivered(const std::string& session_id,
                           const std::vector<std::string>& request_ids) = 0;

  // The `tools` array of list_tools_res, in name order.
  virtual nlohmann::json list_tools() const = 0;
};

} // namespace exai::core
