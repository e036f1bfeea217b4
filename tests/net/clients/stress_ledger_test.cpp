// The op-protocol checks of `exai stress`, driven frame by frame without a
// daemon: what the ledger accepts, what it reports as a violation, and what
// it asks the connection layer to send back.

#include "net/clients/stress_ledger.hpp"
#include "net/protocol/op_protocol.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <string>

namespace {

using exai::core::stress::CallClass;
using exai::net::StressLedger;
using nlohmann::json;
using namespace std::chrono_literals;

using Action = StressLedger::Followup::Action;

constexpr StressLedger::ConnId kConn = 1;
constexpr StressLedger::ConnId kOtherConn = 2;
const StressLedger::Clock::time_point kT0{std::chrono::hours(1)};

StressLedger
make_ledger()
{
  StressLedger::Limits limits;
  limits.overdue_after = 10s;
  limits.max_bytes = 1000;
  return StressLedger(limits);
}

std::string
call_frame(const std::string& id)
{
  return exai::net::protocol::call_tool_frame(id, "version", json::object());
}

void
send_call(StressLedger& ledger,
          const std::string& id,
          CallClass kind = CallClass::normal,
          StressLedger::OnAck on_ack = StressLedger::OnAck::nothing,
          StressLedger::ConnId conn = kConn)
{
  ledger.call_sent(conn, kind, id, call_frame(id), kT0, on_ack);
}

std::string
frame(const std::string& op, const std::string& id)
{
  return json{{"op", op}, {"request_id", id}}.dump();
}

std::string
ok_result(const std::string& id)
{
  return json{{"op", "call_tool_res"}, {"request_id", id}, {"outputs", json::array()}}.dump();
}

std::string
error_result(const std::string& id, const std::string& code)
{
  return json{
      {"op", "call_tool_res"}, {"request_id", id}, {"error", {{"code", code}, {"message", "m"}}}}
      .dump();
}

std::size_t
violations_of(const StressLedger& ledger, const std::string& kind)
{
  const auto& counts = ledger.violations().counts();
  const auto it = counts.find(kind);
  return it == counts.end() ? 0 : it->second;
}

std::size_t
outcomes_of(const StressLedger& ledger, const std::string& outcome)
{
  const auto& outcomes = ledger.tally().outcomes();
  const auto it = outcomes.find(outcome);
  return it == outcomes.end() ? 0 : it->second;
}

} // namespace

TEST_CASE("stress ledger: one result per accepted call is clean", "[net][stress]")
{
  auto ledger = make_ledger();
  send_call(ledger, "a");
  send_call(ledger, "b");
  CHECK(ledger.pending() == 2);

  CHECK(ledger.on_frame(kConn, frame("call_tool_ack", "a"), kT0 + 1ms).action == Action::none);
  CHECK(ledger.on_frame(kConn, frame("progress", "a"), kT0 + 2ms).action == Action::none);
  CHECK(ledger.on_frame(kConn, ok_result("a"), kT0 + 30ms).action == Action::none);
  CHECK(ledger.on_frame(kConn, error_result("b", "CANCELLED"), kT0 + 40ms).action == Action::none);

  CHECK(ledger.violations().empty());
  CHECK(ledger.pending() == 0);
  CHECK(ledger.tally().calls() == 2);
  CHECK(outcomes_of(ledger, "ok") == 1);
  CHECK(outcomes_of(ledger, "CANCELLED") == 1);
  CHECK(ledger.errors() == 1);
  CHECK(ledger.last_result() == kT0 + 40ms);
  CHECK(ledger.tally().latency().at("ok").max == Approx(30.0));

  // Nothing is left to be missing.
  ledger.check_overdue(kT0 + 1h);
  ledger.report_outstanding();
  CHECK(ledger.violations().empty());
}

TEST_CASE("stress ledger: a second call_tool_res for the same request_id is a violation",
          "[net][stress]")
{
  auto ledger = make_ledger();
  send_call(ledger, "a");
  ledger.on_frame(kConn, ok_result("a"), kT0 + 1ms);
  REQUIRE(ledger.violations().empty());

  ledger.on_frame(kConn, ok_result("a"), kT0 + 2ms);
  CHECK(violations_of(ledger, "unknown_request_id") == 1);
  CHECK(ledger.tally().calls() == 1); // the extra result is not counted as a call
  // A progress or an ack after the result is just as wrong.
  ledger.on_frame(kConn, frame("progress", "a"), kT0 + 3ms);
  CHECK(violations_of(ledger, "unknown_request_id") == 2);
}

TEST_CASE("stress ledger: frames for request_ids never sent, or sent on another connection, are "
          "violations",
          "[net][stress]")
{
  auto ledger = make_ledger();
  ledger.on_frame(kConn, ok_result("never-sent"), kT0);
  CHECK(violations_of(ledger, "unknown_request_id") == 1);
  CHECK_THAT(ledger.violations().kept().at(0).detail, Catch::Contains("never-sent"));

  send_call(ledger, "a");
  ledger.on_frame(kOtherConn, ok_result("a"), kT0 + 1ms);
  CHECK(violations_of(ledger, "unknown_request_id") == 2);
  CHECK(ledger.pending() == 1); // still waiting on the right connection
  CHECK(ledger.tally().calls() == 0);
}

TEST_CASE("stress ledger: frames without op or request_id, or not JSON, are violations",
          "[net][stress]")
{
  auto ledger = make_ledger();
  send_call(ledger, "a");

  ledger.on_frame(kConn, R"({"request_id": "a", "outputs": []})", kT0);
  CHECK(violations_of(ledger, "missing_op") == 1);
  ledger.on_frame(kConn, R"({"op": 7, "request_id": "a"})", kT0);
  CHECK(violations_of(ledger, "missing_op") == 2);

  for (const char* op : {"progress", "call_tool_ack", "call_tool_res"}) {
    CAPTURE(op);
    const auto before = violations_of(ledger, "missing_request_id");
    ledger.on_frame(kConn, json{{"op", op}, {"outputs", json::array()}}.dump(), kT0);
    CHECK(violations_of(ledger, "missing_request_id") == before + 1);
  }

  ledger.on_frame(kConn, "{not json", kT0);
  CHECK(violations_of(ledger, "invalid_json") == 1);
  ledger.on_frame(kConn, frame("list_tools_res", "a"), kT0);
  CHECK(violations_of(ledger, "unexpected_op") == 1);

  // None of these settled the call.
  CHECK(ledger.pending() == 1);
  CHECK(ledger.tally().calls() == 0);
}

TEST_CASE("stress ledger: a result with neither outputs nor an error code is malformed",
          "[net][stress]")
{
  auto ledger = make_ledger();
  send_call(ledger, "a");
  send_call(ledger, "b");
  ledger.on_frame(kConn, frame("call_tool_res", "a"), kT0);
  ledger.on_frame(
      kConn, json{{"op", "call_tool_res"}, {"request_id", "b"}, {"error", "x"}}.dump(), kT0);
  CHECK(violations_of(ledger, "malformed_result") == 2);
  CHECK(outcomes_of(ledger, "invalid") == 2);
  CHECK(ledger.pending() == 0);
}

TEST_CASE("stress ledger: an overdue call is reported missing and frees its slot", "[net][stress]")
{
  auto ledger = make_ledger();
  send_call(ledger, "a");
  ledger.call_sent(kConn, CallClass::normal, "b", call_frame("b"), kT0 + 5s);

  ledger.check_overdue(kT0 + 10s); // exactly at the limit: not yet
  CHECK(ledger.violations().empty());
  CHECK(ledger.pending() == 2);

  ledger.check_overdue(kT0 + 10s + 1ms);
  CHECK(violations_of(ledger, "missing_result") == 1);
  CHECK_THAT(ledger.violations().kept().at(0).detail,
             Catch::Contains("request_id a") && Catch::Contains("10.0 s"));
  CHECK(ledger.pending() == 1);

  // Its late result is then unknown, not a second outcome.
  ledger.on_frame(kConn, ok_result("a"), kT0 + 11s);
  CHECK(violations_of(ledger, "unknown_request_id") == 1);
  CHECK(ledger.tally().calls() == 0);
}

TEST_CASE("stress ledger: what is unanswered when the drain ends or a connection closes is "
          "missing",
          "[net][stress]")
{
  auto ledger = make_ledger();
  send_call(ledger, "a");
  send_call(ledger, "b", CallClass::normal, StressLedger::OnAck::nothing, kOtherConn);
  ledger.malformed_sent(kConn, kT0);
  ledger.oversize_sent();
  CHECK(ledger.pending() == 4);

  ledger.connection_lost(kConn);
  CHECK(violations_of(ledger, "missing_result") == 1);
  CHECK(violations_of(ledger, "missing_error_frame") == 1);
  CHECK(ledger.pending() == 2);

  ledger.report_outstanding();
  CHECK(violations_of(ledger, "missing_result") == 2);
  CHECK_THAT(ledger.violations().kept().back().detail,
             Catch::Contains("request_id b") && Catch::Contains("0 of 1"));
  CHECK(ledger.pending() == 0);
}

TEST_CASE("stress ledger: a cancelled call is cancelled once acknowledged; a late op=error for it "
          "is expected once",
          "[net][stress]")
{
  auto ledger = make_ledger();
  send_call(ledger, "a", CallClass::cancel, StressLedger::OnAck::cancel);

  const auto next = ledger.on_frame(kConn, frame("call_tool_ack", "a"), kT0 + 1ms);
  REQUIRE(next.action == Action::send);
  CHECK(next.frame == exai::net::protocol::cancel_tool_frame("a"));
  // Only the first ack triggers a cancel.
  CHECK(ledger.on_frame(kConn, frame("call_tool_ack", "a"), kT0 + 2ms).action == Action::none);

  ledger.on_frame(kConn, error_result("a", "CANCELLED"), kT0 + 3ms);
  const std::string late =
      json{{"op", "error"}, {"request_id", "a"}, {"error", {{"code", "NOT_FOUND"}}}}.dump();
  ledger.on_frame(kConn, late, kT0 + 4ms);
  CHECK(ledger.violations().empty());
  ledger.on_frame(kConn, late, kT0 + 5ms);
  CHECK(violations_of(ledger, "unexpected_error_frame") == 1);
  CHECK(outcomes_of(ledger, "CANCELLED") == 1);
}

TEST_CASE("stress ledger: a duplicate is sent again once and must replay the same outcome",
          "[net][stress]")
{
  auto ledger = make_ledger();
  send_call(ledger, "same", CallClass::duplicate);
  send_call(ledger, "differs", CallClass::duplicate);

  const auto again = ledger.on_frame(kConn, ok_result("same"), kT0 + 1ms);
  REQUIRE(again.action == Action::send);
  CHECK(again.frame == call_frame("same"));
  CHECK(ledger.pending() == 2); // still waiting for the replay
  CHECK(ledger.on_frame(kConn, ok_result("same"), kT0 + 2ms).action == Action::none);
  CHECK(ledger.violations().empty());

  ledger.on_frame(kConn, ok_result("differs"), kT0 + 1ms);
  ledger.on_frame(kConn, error_result("differs", "INTERNAL"), kT0 + 2ms);
  CHECK(violations_of(ledger, "replay_mismatch") == 1);
  CHECK(ledger.pending() == 0);
  CHECK(ledger.tally().calls() == 4);
}

TEST_CASE("stress ledger: a re-attached call is answered on its new connection", "[net][stress]")
{
  auto ledger = make_ledger();
  send_call(ledger, "a", CallClass::disconnect, StressLedger::OnAck::reattach);
  send_call(ledger, "b", CallClass::disconnect, StressLedger::OnAck::reattach);

  const auto next = ledger.on_frame(kConn, frame("call_tool_ack", "a"), kT0 + 1ms);
  REQUIRE(next.action == Action::reattach);
  CHECK(next.request_id == "a");
  CHECK(ledger.move_call("a", kOtherConn) == call_frame("a"));

  ledger.on_frame(kConn, ok_result("a"), kT0 + 2ms);
  CHECK(violations_of(ledger, "unknown_request_id") == 1);
  // The ack on the new connection does not walk away again.
  CHECK(ledger.on_frame(kOtherConn, frame("call_tool_ack", "a"), kT0 + 3ms).action == Action::none);
  ledger.on_frame(kOtherConn, ok_result("a"), kT0 + 4ms);
  CHECK(outcomes_of(ledger, "ok") == 1);

  // With no connection to move to, the call is dropped without a verdict.
  REQUIRE(ledger.on_frame(kConn, frame("call_tool_ack", "b"), kT0 + 1ms).action ==
          Action::reattach);
  ledger.forget_call("b");
  CHECK(ledger.pending() == 0);
  ledger.report_outstanding();
  CHECK(violations_of(ledger, "missing_result") == 0);
}

TEST_CASE("stress ledger: each malformed frame is owed one op=error on its connection",
          "[net][stress]")
{
  auto ledger = make_ledger();
  ledger.malformed_sent(kConn, kT0);
  const std::string error =
      json{{"op", "error"}, {"error", {{"code", "VALIDATION_ERROR"}, {"message", "m"}}}}.dump();

  ledger.on_frame(kOtherConn, error, kT0 + 1ms);
  CHECK(violations_of(ledger, "unexpected_error_frame") == 1);
  CHECK(ledger.pending() == 1);

  ledger.on_frame(kConn, error, kT0 + 2ms);
  CHECK(outcomes_of(ledger, "VALIDATION_ERROR") == 1);
  CHECK(ledger.tally().by_class().at("malformed").at("VALIDATION_ERROR") == 1);
  CHECK(ledger.pending() == 0);

  ledger.on_frame(kConn, error, kT0 + 3ms);
  CHECK(violations_of(ledger, "unexpected_error_frame") == 2);
}

TEST_CASE("stress ledger: an oversize frame must be closed with 1009 (or reset)", "[net][stress]")
{
  auto ledger = make_ledger();
  for (const char* outcome : {"closed_1009", "reset", "closed_1000", "answered", "not_closed"}) {
    ledger.oversize_sent();
    ledger.oversize_finished(outcome, "detail", kT0, kT0 + 5ms);
  }
  CHECK(violations_of(ledger, "oversize_not_rejected") == 3);
  CHECK_THAT(ledger.violations().kept().at(0).detail,
             Catch::Contains("1001 bytes") && Catch::Contains("limit 1000"));
  CHECK(ledger.tally().by_class().at("oversize").size() == 5);
  CHECK(ledger.pending() == 0);
}
