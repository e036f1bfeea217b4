#pragma once

// What each call class of `exai stress` sends (SPEC §7): the frames that
// start a scenario, on which connection, and what the ledger should expect
// back. One per load thread.

#include "core/stress/stress_report.hpp"
#include "net/clients/stress_connections.hpp"
#include "net/clients/stress_ledger.hpp"
#include "net/clients/stress_runner.hpp"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <random>
#include <string>

namespace exai::net {

class StressScenarios {
public:
  // `run_id` and `worker` make this thread's request_ids unique across the
  // daemon's replay store.
  StressScenarios(const StressOptions& options,
                  std::string run_id,
                  std::size_t worker,
                  StressConnections& connections,
                  StressLedger& ledger);

  // Starts one scenario of a class drawn from the mix (nothing when the
  // connection it needs cannot be had).
  void start();

private:
  using CallClass = core::stress::CallClass;
  using Conn = StressConnections::Conn;

  void start_on_pool(Conn* conn, CallClass kind);
  void start_disconnect();
  void start_oversize();
  void send_call(Conn& conn,
                 CallClass kind,
                 const std::string& id,
                 const std::string& tool,
                 const nlohmann::json& arguments,
                 StressLedger::OnAck on_ack = StressLedger::OnAck::nothing);
  std::string next_id();
  nlohmann::json tool_arguments(const std::string& tool, const std::string& id) const;
  nlohmann::json chat_arguments(std::string prompt) const;

  const StressOptions& options_;
  const std::string run_id_;
  const std::size_t worker_;
  StressConnections& connections_;
  StressLedger& ledger_;
  std::mt19937_64 rng_;
  std::uint64_t counter_ = 0;
};

} // namespace exai::net
