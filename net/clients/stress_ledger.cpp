#include "net/clients/stress_ledger.hpp"

#include "net/protocol/op_protocol.hpp"

#include <fmt/format.h>

#include <utility>
#include <variant>

namespace exai::net {

namespace {

using nlohmann::json;

double
ms_between(StressLedger::Clock::time_point from, StressLedger::Clock::time_point to)
{
  return std::chrono::duration<double, std::milli>(to - from).count();
}

// Enough of a frame to recognise it in a report.
std::string
snippet(std::string_view text)
{
  constexpr std::size_t kMax = 160;
  std::string out(text.substr(0, kMax));
  if (text.size() > kMax) {
    out += "…"; // appended in place: GCC 12 -O2 misreads string(...) + "…" (-Warray-bounds)
  }
  return out;
}

} // namespace

StressLedger::StressLedger(Limits limits)
    : limits_(limits)
{
}

void
StressLedger::call_sent(ConnId conn,
                        CallClass kind,
                        std::string id,
                        std::string frame,
                        Clock::time_point now,
                        OnAck on_ack)
{
  Call call;
  call.kind = kind;
  call.conn = conn;
  call.sent = now;
  call.on_ack = on_ack;
  call.frame = std::move(frame);
  calls_.emplace(std::move(id), std::move(call));
}

void
StressLedger::malformed_sent(ConnId conn, Clock::time_point now)
{
  malformed_[conn].push_back(now);
  ++malformed_pending_;
}

void
StressLedger::oversize_sent()
{
  ++oversize_pending_;
}

void
StressLedger::oversize_finished(const std::string& outcome,
                                const std::string& detail,
                                Clock::time_point sent,
                                Clock::time_point now)
{
  tally_.add(CallClass::oversize, outcome, ms_between(sent, now));
  last_result_ = now;
  if (outcome != "closed_1009" && outcome != "reset") {
    violation("oversize_not_rejected",
              fmt::format("a frame of {} bytes (limit {}) was not closed with 1009: {}",
                          limits_.max_bytes + 1,
                          limits_.max_bytes,
                          detail));
  }
  if (oversize_pending_ > 0) {
    --oversize_pending_;
  }
}

StressLedger::Followup
StressLedger::on_frame(ConnId conn, std::string_view text, Clock::time_point now)
{
  auto parsed = protocol::parse_frame(text);
  if (std::holds_alternative<protocol::FrameProblem>(parsed)) {
    violation("invalid_json", "a frame that is not a JSON object: " + snippet(text));
    return {};
  }
  const json& frame = std::get<json>(parsed);
  const auto op_it = frame.find("op");
  if (op_it == frame.end() || !op_it->is_string()) {
    violation("missing_op", "a frame without op: " + snippet(text));
    return {};
  }
  const std::string& op = op_it->get_ref<const std::string&>();
  const auto id_it = frame.find("request_id");
  const bool has_id = id_it != frame.end() && id_it->is_string();
  if (op == "error") {
    on_error_frame(conn, frame, has_id ? id_it->get<std::string>() : std::string(), text, now);
    return {};
  }
  if (op != "progress" && op != "call_tool_ack" && op != "call_tool_res") {
    violation("unexpected_op", fmt::format("unexpected op {}: {}", op, snippet(text)));
    return {};
  }
  if (!has_id) {
    violation("missing_request_id", fmt::format("{} without request_id: {}", op, snippet(text)));
    return {};
  }
  const std::string& id = id_it->get_ref<const std::string&>();
  const auto it = calls_.find(id);
  if (it == calls_.end() || it->second.conn != conn) {
    violation(
        "unknown_request_id",
        fmt::format("{} for an unknown or finished request_id {}: {}", op, id, snippet(text)));
    return {};
  }
  if (op == "call_tool_ack") {
    return on_ack(id, it->second);
  }
  if (op == "call_tool_res") {
    return on_result(it, frame, text, now);
  }
  return {};
}

void
StressLedger::on_error_frame(ConnId conn,
                             const json& frame,
                             const std::string& id,
                             std::string_view text,
                             Clock::time_point now)
{
  const auto error = frame.find("error");
  const std::string code = error != frame.end() && error->is_object()
                               ? error->value("code", std::string("error"))
                               : std::string("error");
  if (!id.empty()) {
    // The answer to a cancel_tool that arrived after its call had finished.
    if (cancelled_.erase(id) > 0) {
      return;
    }
    violation("unexpected_error_frame",
              fmt::format("op=error for request_id {}: {}", id, snippet(text)));
    return;
  }
  const auto waiting = malformed_.find(conn);
  if (waiting == malformed_.end() || waiting->second.empty()) {
    violation("unexpected_error_frame", "op=error with no cause: " + snippet(text));
    return;
  }
  const auto sent = waiting->second.front();
  waiting->second.pop_front();
  --malformed_pending_;
  record(CallClass::malformed, code, ms_between(sent, now), now);
}

StressLedger::Followup
StressLedger::on_ack(const std::string& id, Call& call)
{
  const OnAck on_ack = std::exchange(call.on_ack, OnAck::nothing);
  if (on_ack == OnAck::cancel) {
    cancelled_.insert(id);
    return {Followup::Action::send, protocol::cancel_tool_frame(id), id};
  }
  if (on_ack == OnAck::reattach) {
    // Walk away mid-call, then ask for the same request_id on another
    // connection: the daemon delivers the result there (running or replayed).
    return {Followup::Action::reattach, {}, id};
  }
  return {};
}

StressLedger::Followup
StressLedger::on_result(Calls::iterator it,
                        const json& frame,
                        std::string_view text,
                        Clock::time_point now)
{
  Call& call = it->second;
  ++call.received;
  std::string outcome;
  const auto error = frame.find("error");
  if (error != frame.end()) {
    if (error->is_object() && error->contains("code") && error->at("code").is_string()) {
      outcome = error->at("code").get<std::string>();
    } else {
      outcome = "invalid";
      violation("malformed_result", "call_tool_res error without code: " + snippet(text));
    }
  } else if (const auto outputs = frame.find("outputs");
             outputs != frame.end() && outputs->is_array()) {
    outcome = "ok";
  } else {
    outcome = "invalid";
    violation("malformed_result", "call_tool_res with neither outputs nor error: " + snippet(text));
  }
  record(call.kind, outcome, ms_between(call.sent, now), now);

  if (call.kind == CallClass::duplicate && call.received == 1) {
    // Send the finished request_id again: the stored result must come back.
    call.first_outcome = outcome;
    call.expected = 2;
    call.sent = now;
    return {Followup::Action::send, call.frame, it->first};
  }
  if (call.kind == CallClass::duplicate && outcome != call.first_outcome) {
    violation(
        "replay_mismatch",
        fmt::format(
            "request_id {} resent: first {} then {}", it->first, call.first_outcome, outcome));
  }
  if (call.received >= call.expected) {
    calls_.erase(it);
  }
  return {};
}

std::string
StressLedger::move_call(const std::string& id, ConnId to)
{
  Call& call = calls_.at(id);
  call.conn = to;
  return call.frame;
}

void
StressLedger::forget_call(const std::string& id)
{
  calls_.erase(id);
}

void
StressLedger::connection_lost(ConnId conn)
{
  for (auto it = calls_.begin(); it != calls_.end();) {
    if (it->second.conn == conn) {
      violation("missing_result",
                fmt::format("request_id {} ({}) got no call_tool_res before its "
                            "connection was closed",
                            it->first,
                            core::stress::to_string(it->second.kind)));
      it = calls_.erase(it);
    } else {
      ++it;
    }
  }
  if (const auto waiting = malformed_.find(conn); waiting != malformed_.end()) {
    report_missing_error_frames(waiting->second.size());
    malformed_pending_ -= waiting->second.size();
    malformed_.erase(waiting);
  }
}

void
StressLedger::check_overdue(Clock::time_point now)
{
  const auto limit = limits_.overdue_after;
  for (auto it = calls_.begin(); it != calls_.end();) {
    if (now - it->second.sent > limit) {
      violation("missing_result",
                fmt::format("request_id {} ({}) got no call_tool_res within {:.1f} s",
                            it->first,
                            core::stress::to_string(it->second.kind),
                            std::chrono::duration<double>(limit).count()));
      it = calls_.erase(it);
    } else {
      ++it;
    }
  }
}

void
StressLedger::report_outstanding()
{
  for (const auto& [id, call] : calls_) {
    violation("missing_result",
              fmt::format("request_id {} ({}) got {} of {} call_tool_res within the drain "
                          "timeout",
                          id,
                          core::stress::to_string(call.kind),
                          call.received,
                          call.expected));
  }
  calls_.clear();
  for (const auto& [conn, waiting] : malformed_) {
    report_missing_error_frames(waiting.size());
  }
  malformed_.clear();
  malformed_pending_ = 0;
  oversize_pending_ = 0;
}

void
StressLedger::report_missing_error_frames(std::size_t count)
{
  for (std::size_t i = 0; i < count; ++i) {
    violation("missing_error_frame", "a malformed frame got no op=error reply");
  }
}

void
StressLedger::violation(std::string kind, std::string detail)
{
  violations_.add(std::move(kind), std::move(detail));
}

std::size_t
StressLedger::pending() const noexcept
{
  return calls_.size() + malformed_pending_ + oversize_pending_;
}

void
StressLedger::record(CallClass kind,
                     const std::string& outcome,
                     double latency_ms,
                     Clock::time_point now)
{
  tally_.add(kind, outcome, latency_ms);
  last_result_ = now;
  if (outcome != "ok") {
    ++errors_;
  }
}

} // namespace exai::net
