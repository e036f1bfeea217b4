#pragma once

#include "core/calls/call_result.hpp"
#include "core/util/interface.hpp"

#include <chrono>
#include <string_view>

namespace exai::core {

// Where the engine reports the life of a call (SPEC §2 order: progress notes,
// the acknowledgement, more progress, exactly one result). One sink per
// client connection or MCP session; the engine holds it weakly, so a
// disconnected client simply stops hearing. Core speaks in these typed
// events; net/ renders them for its wire (op protocol frames, JSON-RPC).
//
// Every method is thread-safe, never blocks on the network and never throws;
// a closed sink drops what it is given.
class CallSink : public Interface {
public:
  // A progress note; `note` is empty for a bare heartbeat.
  virtual void on_progress(std::string_view request_id,
                           std::string_view tool,
                           std::string_view note) noexcept = 0;

  // The call was admitted (capacity held); it runs for at most `timeout`.
  virtual void on_ack(std::string_view request_id,
                      std::string_view tool,
                      std::chrono::milliseconds timeout) noexcept = 0;

  // The call's one result. True when the sink took it for delivery (queued
  // on an open connection); false when it could not (then the engine keeps it
  // for the session to collect when it resumes).
  virtual bool on_result(std::string_view request_id, const ToolResult& result) noexcept = 0;
};

} // namespace exai::core
