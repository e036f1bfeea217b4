#pragma once

// A tiny stand-in for `exai serve` that speaks the op protocol (hello,
// call_tool -> progress, call_tool_ack, call_tool_res, cancel_tool, health)
// with one deliberate fault, so that tests can prove `exai stress` notices.
// Loopback only, an ephemeral port, one Poco thread per connection (it is
// for a handful of connections). Stops on destruction.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace exai::test {

class BrokenDaemon {
public:
  enum class Fault {
    none,               // a correct daemon (instant results, idle health)
    drop_result,        // the third call_tool never gets its call_tool_res
    leak_in_use,        // after the first call, health reports global in_use=1 forever
    missing_request_id, // the second call's progress frame lacks request_id
  };

  explicit BrokenDaemon(Fault fault);
  ~BrokenDaemon();
  BrokenDaemon(const BrokenDaemon&) = delete;
  BrokenDaemon& operator=(const BrokenDaemon&) = delete;

  std::uint16_t port() const noexcept { return port_; }
  // call_tool frames received so far.
  std::size_t calls() const noexcept;

  struct Impl; // the Poco server and its state (broken_daemon.cpp)

private:
  std::unique_ptr<Impl> impl_;
  std::uint16_t port_ = 0;
};

} // namespace exai::test
