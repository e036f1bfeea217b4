#include "net/clients/stress_scenarios.hpp"

#include "net/protocol/op_protocol.hpp"

#include <fmt/format.h>

#include <chrono>
#include <string_view>
#include <utility>

namespace exai::net {

namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr int kIdenticalCallers = 3;
// The fake upstream's delays: long enough that the call is still running
// when the scenario acts on it.
constexpr auto kDisconnectSleep = 200ms;
constexpr auto kIdenticalSleep = 50ms;
constexpr auto kBurstSleep = 100ms;

// A chat prompt the fake upstream answers after `sleep`.
std::string
prompt_for(std::string_view what, std::string_view id, std::chrono::milliseconds sleep)
{
  return fmt::format("[[sleep_ms={}]] exai stress {} {}", sleep.count(), what, id);
}

} // namespace

StressScenarios::StressScenarios(const StressOptions& options,
                                 std::string run_id,
                                 std::size_t worker,
                                 StressConnections& connections,
                                 StressLedger& ledger)
    : options_(options)
    , run_id_(std::move(run_id))
    , worker_(worker)
    , connections_(connections)
    , ledger_(ledger)
    , rng_(options.seed * 1000003ULL + worker)
{
}

void
StressScenarios::start()
{
  const CallClass kind = options_.mix.pick(rng_());
  if (kind == CallClass::disconnect) {
    start_disconnect();
  } else if (kind == CallClass::oversize) {
    start_oversize();
  } else if (Conn* conn = connections_.next_pool_conn(); conn != nullptr) {
    start_on_pool(conn, kind);
  }
}

// The classes that run on the pool connections.
void
StressScenarios::start_on_pool(Conn* conn, CallClass kind)
{
  switch (kind) {
  case CallClass::normal:
  case CallClass::duplicate: {
    const std::string id = next_id();
    send_call(*conn, kind, id, options_.tool, tool_arguments(options_.tool, id));
    break;
  }
  case CallClass::timeout: {
    const std::string id = next_id();
    const auto sleep = options_.call_timeout + 1s;
    send_call(*conn, kind, id, "chat", chat_arguments(prompt_for("timeout", id, sleep)));
    break;
  }
  case CallClass::cancel: {
    const std::string id = next_id();
    send_call(*conn,
              kind,
              id,
              "chat",
              chat_arguments(prompt_for("cancel", id, options_.cancel_sleep)),
              StressLedger::OnAck::cancel);
    break;
  }
  case CallClass::identical: {
    const json args = chat_arguments(prompt_for("identical", next_id(), kIdenticalSleep));
    for (int i = 0; i < kIdenticalCallers && conn != nullptr; ++i) {
      send_call(*conn, kind, next_id(), "chat", args);
      conn = connections_.next_pool_conn();
    }
    break;
  }
  case CallClass::burst: {
    for (std::size_t i = 0; i < options_.burst_size && conn->open; ++i) {
      const std::string id = next_id();
      send_call(*conn, kind, id, "chat", chat_arguments(prompt_for("burst", id, kBurstSleep)));
    }
    break;
  }
  case CallClass::malformed: {
    ledger_.malformed_sent(conn->id, StressConnections::Clock::now());
    connections_.send(*conn, "{\"op\": \"call_tool\", this is not JSON (exai stress)");
    break;
  }
  case CallClass::disconnect:
  case CallClass::oversize:
    break; // on connections of their own
  }
}

void
StressScenarios::start_disconnect()
{
  Conn* ephemeral = connections_.open_ephemeral(CallClass::disconnect);
  if (ephemeral == nullptr) {
    return;
  }
  const std::string id = next_id();
  send_call(*ephemeral,
            CallClass::disconnect,
            id,
            "chat",
            chat_arguments(prompt_for("disconnect", id, kDisconnectSleep)),
            StressLedger::OnAck::reattach);
}

void
StressScenarios::start_oversize()
{
  Conn* ephemeral = connections_.open_ephemeral(CallClass::oversize);
  if (ephemeral == nullptr) {
    return;
  }
  ledger_.oversize_sent();
  ephemeral->oversize_sent = StressConnections::Clock::now();
  connections_.send_oversize(*ephemeral, std::string(options_.max_bytes + 1, 'x'));
}

void
StressScenarios::send_call(Conn& conn,
                           CallClass kind,
                           const std::string& id,
                           const std::string& tool,
                           const json& arguments,
                           StressLedger::OnAck on_ack)
{
  std::string frame = protocol::call_tool_frame(id, tool, arguments);
  // Booked before it is sent: a failed send loses the connection, and with
  // it this call, as a missing result.
  ledger_.call_sent(conn.id, kind, id, frame, StressConnections::Clock::now(), on_ack);
  connections_.send(conn, frame);
}

std::string
StressScenarios::next_id()
{
  return fmt::format("st-{}-{}-{}", run_id_, worker_, ++counter_);
}

json
StressScenarios::tool_arguments(const std::string& tool, const std::string& id) const
{
  if (tool == "chat" || tool == "challenge") {
    json args = {{"prompt", "exai stress " + id}};
    if (tool == "chat" && !options_.model.empty()) {
      args["model"] = options_.model;
    }
    return args;
  }
  return json::object();
}

json
StressScenarios::chat_arguments(std::string prompt) const
{
  json args = {{"prompt", std::move(prompt)}};
  if (!options_.model.empty()) {
    args["model"] = options_.model;
  }
  return args;
}

} // namespace exai::net
