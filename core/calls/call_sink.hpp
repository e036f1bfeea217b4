#pragma once

#include <string>

namespace exai::core {

// Where the frames concerning calls go: one per client connection (or MCP
// session). Implemented by net/; the call engine holds it weakly, so a
// disconnected client simply stops receiving.
class CallSink {
public:
  CallSink() = default;
  CallSink(const CallSink&) = delete;
  CallSink& operator=(const CallSink&) = delete;
  CallSink(CallSink&&) = delete;
  CallSink& operator=(CallSink&&) = delete;
  virtual ~CallSink() = default;

  // Queues one complete JSON text frame for the client. Thread-safe, never
  // blocks on the network and never throws; a closed sink drops the frame.
  virtual void send(std::string frame) noexcept = 0;
};

} // namespace exai::core
