#pragma once

#include "core/calls/call_result.hpp"
#include "core/error.hpp"

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>
#include <vector>

// Renders the engine's call events as op-protocol frames (SPEC §2). Each
// returns compact JSON text ready for the wire; every one carries "op" and
// "request_id". The per-call frames are spliced from escaped values rather
// than built as JSON trees: building and dumping trees (the result text
// twice) cost more than the rest of a version call.
namespace exai::net::protocol::frames {

using core::Errc;

// {"op":"progress","request_id","name","t"[,"note"]}; no note when empty.
std::string
progress(std::string_view request_id, std::string_view name, std::string_view note = {});

// {"op":"call_tool_ack","request_id","accepted":true,"timeout","name"}.
std::string ack(std::string_view request_id, std::string_view name, double timeout_s);

// {"op":"call_tool_res","request_id","outputs":[{"type":"text","text"}…],"text"}.
std::string result(std::string_view request_id, const std::vector<std::string>& outputs);

// A call's result event: the success frame above or the error frame below.
std::string result(std::string_view request_id, const core::ToolResult& result);

// {"op":"call_tool_res","request_id","error":{"code","message","details"}}.
std::string error_result(std::string_view request_id,
                         Errc code,
                         std::string_view message,
                         const nlohmann::json& details = nlohmann::json::object());

// {"op":"error","error":{"code","message","details"}} for frames that concern
// no call (bad JSON, unknown op); request_id is added when known.
std::string op_error(Errc code,
                     std::string_view message,
                     const nlohmann::json& details = nlohmann::json::object(),
                     std::string_view request_id = {});

// Seconds since the epoch, with milliseconds.
double epoch_seconds();

} // namespace exai::net::protocol::frames
