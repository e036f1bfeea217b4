#pragma once

// The hostile side of `exai stress --hostile`: clients that misbehave on
// purpose, the way a careless or malicious local process would, while the
// normal load runs — so anyone can see that well-behaved clients are not
// hurt. Each kind keeps `per_kind` connections open and opens a new one
// whenever the daemon cuts one:
//   half_frame    upgrades, then sends half a frame header and stops
//   pre_hello     upgrades and never says hello
//   slow_reader   says hello, keeps asking for list_tools, never reads
//   deep_json     sends call_tool frames nested 75,000 levels deep
//   oversize      announces a frame one byte over EXAI_WS_MAX_BYTES
//   trickler      sends an HTTP request head one byte at a time
// One thread drives them all (non-blocking sockets, a short pace).

#include "net/clients/stress_runner.hpp"

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <thread>

namespace exai::net {

struct HostileOptions {
  DaemonAddress target;
  std::size_t per_kind = 4;
  std::size_t max_bytes = 33554432; // the daemon's EXAI_WS_MAX_BYTES
  std::chrono::milliseconds pace{100};
};

class HostileClients {
public:
  explicit HostileClients(HostileOptions options);
  ~HostileClients();
  HostileClients(const HostileClients&) = delete;
  HostileClients& operator=(const HostileClients&) = delete;

  // Starts the hostile thread and waits (at most `settle`) until every
  // hostile connection has made its first move, so the load that follows
  // runs under attack from its first call.
  void start(std::chrono::milliseconds settle = std::chrono::seconds(5));

  // Stops it, closes every hostile connection and returns what happened per
  // kind: {"half_frame": {"opened": N, "cut": M}, ...}; deep_json also
  // counts "answered" (VALIDATION_ERROR replies).
  nlohmann::json stop();

private:
  struct State;
  void run() noexcept;

  HostileOptions options_;
  std::unique_ptr<State> state_;
  std::atomic<bool> running_{false};
  std::atomic<std::size_t> rounds_{0}; // completed passes over every connection
  std::thread thread_;
};

} // namespace exai::net
