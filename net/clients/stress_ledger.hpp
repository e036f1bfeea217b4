#pragma once

// The books of one `exai stress` load thread (SPEC §7): the calls and
// malformed frames still awaiting an answer, the op-protocol checks made on
// every frame the daemon sends back, and what came of it (outcome tallies
// and violations). No sockets: connections are named by an id, frames come
// in as text with the time they arrived, and what must be sent back is
// returned for the connection layer to carry out — so every protocol rule
// here can be tested without a daemon.

#include "core/stress/stress_report.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

namespace exai::net {

class StressLedger {
public:
  using Clock = std::chrono::steady_clock;
  using ConnId = std::uint64_t;
  using CallClass = core::stress::CallClass;

  struct Limits {
    // A call unanswered this long after it was sent is missing (every
    // accepted call ends within the daemon's acquire and call timeouts).
    std::chrono::milliseconds overdue_after{0};
    std::size_t max_bytes = 0; // the daemon's frame limit (oversize frames send one more)
  };

  // What happens on a call's connection once the daemon acknowledged it.
  enum class OnAck {
    nothing,
    cancel,   // send cancel_tool for it
    reattach, // walk away, and ask for it again on another connection
  };

  // What the connection a frame came on must do next.
  struct Followup {
    enum class Action {
      none,
      send,     // send `frame` on the same connection
      reattach, // close that connection and move `request_id` to another one
    };
    Action action = Action::none;
    std::string frame;
    std::string request_id;
  };

  explicit StressLedger(Limits limits);

  // A call_tool frame `frame` with `id` is about to be sent on `conn`.
  void call_sent(ConnId conn,
                 CallClass kind,
                 std::string id,
                 std::string frame,
                 Clock::time_point now,
                 OnAck on_ack = OnAck::nothing);
  // A frame that is not JSON is about to be sent on `conn`: op=error is due.
  void malformed_sent(ConnId conn, Clock::time_point now);
  // A frame over the daemon's limit went out on a connection of its own.
  void oversize_sent();
  // How that connection ended: "closed_<code>", "reset", "answered" or
  // "not_closed"; only a 1009 close (or a reset mid-send) is a rejection.
  void oversize_finished(const std::string& outcome,
                         const std::string& detail,
                         Clock::time_point sent,
                         Clock::time_point now);

  // Checks one text frame the daemon sent on `conn` and records what it
  // ends.
  Followup on_frame(ConnId conn, std::string_view text, Clock::time_point now);

  // After a Followup::Action::reattach: the call now waits on `to`; returns
  // the frame to send there. forget() when no other connection is left.
  std::string move_call(const std::string& id, ConnId to);
  void forget_call(const std::string& id);

  // `conn` is gone: its unanswered calls and malformed frames are missing.
  void connection_lost(ConnId conn);
  // Reports calls unanswered for longer than limits.overdue_after as
  // missing, freeing their slots so one lost result cannot stall the load.
  void check_overdue(Clock::time_point now);
  // The drain timeout is over: whatever is still unanswered is missing.
  void report_outstanding();

  void violation(std::string kind, std::string detail);
  // Elapsed time is measured from here when nothing finishes.
  void begin(Clock::time_point start) { last_result_ = start; }

  // Calls, malformed frames and oversize frames awaiting an answer.
  std::size_t pending() const noexcept;
  std::size_t errors() const noexcept { return errors_; } // results that were not "ok"
  const core::stress::Tally& tally() const noexcept { return tally_; }
  const core::stress::ViolationLog& violations() const noexcept { return violations_; }
  Clock::time_point last_result() const noexcept { return last_result_; }

private:
  struct Call {
    CallClass kind = CallClass::normal;
    ConnId conn = 0;
    Clock::time_point sent;
    int expected = 1; // call_tool frames sent with this id
    int received = 0; // call_tool_res frames received
    OnAck on_ack = OnAck::nothing;
    std::string frame; // kept: duplicates and re-attached calls send it again
    std::string first_outcome;
  };
  using Calls = std::unordered_map<std::string, Call>;

  void on_error_frame(ConnId conn,
                      const nlohmann::json& frame,
                      const std::string& id,
                      std::string_view text,
                      Clock::time_point now);
  Followup on_ack(const std::string& id, Call& call);
  Followup on_result(Calls::iterator it,
                     const nlohmann::json& frame,
                     std::string_view text,
                     Clock::time_point now);
  void record(CallClass kind, const std::string& outcome, double latency_ms, Clock::time_point now);
  void report_missing_error_frames(std::size_t count);

  Limits limits_;
  Calls calls_;
  std::unordered_map<ConnId, std::deque<Clock::time_point>>
      malformed_; // unanswered, per connection
  std::size_t malformed_pending_ = 0;
  std::size_t oversize_pending_ = 0;
  std::unordered_set<std::string> cancelled_; // cancel_tool sent; a late op=error is fine
  core::stress::Tally tally_;
  core::stress::ViolationLog violations_;
  std::size_t errors_ = 0;
  Clock::time_point last_result_;
};

} // namespace exai::net
