#include "net/protocol/op_frames.hpp"

#include <chrono>

namespace exai::net::protocol::frames {

namespace {

std::string
dump(const nlohmann::json& frame)
{
  // Tool output may hold invalid UTF-8 from upstream; replace, never throw.
  return frame.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

nlohmann::json
error_body(Errc code, std::string_view message, const nlohmann::json& details)
{
  return {{"code", core::protocol_code(code)},
          {"message", message},
          {"details", details.is_null() ? nlohmann::json::object() : details}};
}

// The frames sent for every call are spliced from values that nlohmann::json
// escapes, not built as json trees and dumped: building and dumping the trees
// (the result text twice) cost more than the rest of a version call.
template <typename T>
void
append_value(std::string& frame, const T& value)
{
  frame += dump(nlohmann::json(value));
}

} // namespace

double
epoch_seconds()
{
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  return static_cast<double>(std::chrono::duration_cast<std::chrono::milliseconds>(now).count()) /
         1000.0;
}

std::string
progress(std::string_view request_id, std::string_view name, std::string_view note)
{
  std::string frame = R"({"op":"progress","request_id":)";
  append_value(frame, request_id);
  frame += R"(,"name":)";
  append_value(frame, name);
  frame += R"(,"t":)";
  append_value(frame, epoch_seconds());
  if (!note.empty()) {
    frame += R"(,"note":)";
    append_value(frame, note);
  }
  frame += '}';
  return frame;
}

std::string
ack(std::string_view request_id, std::string_view name, double timeout_s)
{
  std::string frame = R"({"op":"call_tool_ack","request_id":)";
  append_value(frame, request_id);
  frame += R"(,"accepted":true,"timeout":)";
  append_value(frame, timeout_s);
  frame += R"(,"name":)";
  append_value(frame, name);
  frame += '}';
  return frame;
}

std::string
result(std::string_view request_id, const std::vector<std::string>& outputs)
{
  // Each output is escaped once and used twice: in "outputs" and, joined by
  // a blank line, in "text" (the escaped join is the join of the escaped
  // texts, with the separator escaped).
  std::vector<std::string> escaped;
  escaped.reserve(outputs.size());
  std::size_t size = 64 + request_id.size();
  for (const auto& text : outputs) {
    escaped.push_back(dump(nlohmann::json(text)));
    size += 2 * escaped.back().size() + 32;
  }
  std::string frame;
  frame.reserve(size);
  frame += R"({"op":"call_tool_res","request_id":)";
  append_value(frame, request_id);
  frame += R"(,"outputs":[)";
  for (std::size_t i = 0; i < escaped.size(); ++i) {
    frame += i == 0 ? R"({"type":"text","text":)" : R"(,{"type":"text","text":)";
    frame += escaped[i];
    frame += '}';
  }
  frame += R"(],"text":")";
  for (std::size_t i = 0; i < escaped.size(); ++i) {
    if (i != 0) {
      frame += R"(\n\n)";
    }
    // Without its quotes.
    frame.append(escaped[i], 1, escaped[i].size() - 2);
  }
  frame += "\"}";
  return frame;
}

std::string
result(std::string_view request_id, const core::ToolResult& outcome)
{
  if (const auto* success = std::get_if<core::ToolSuccess>(&outcome)) {
    return result(request_id, success->outputs);
  }
  const auto& failure = std::get<core::ToolFailure>(outcome);
  return error_result(request_id, failure.code, failure.message, failure.details);
}

std::string
error_result(std::string_view request_id,
             Errc code,
             std::string_view message,
             const nlohmann::json& details)
{
  return dump({{"op", "call_tool_res"},
               {"request_id", request_id},
               {"error", error_body(code, message, details)}});
}

std::string
op_error(Errc code,
         std::string_view message,
         const nlohmann::json& details,
         std::string_view request_id)
{
  nlohmann::json frame = {{"op", "error"}, {"error", error_body(code, message, details)}};
  if (!request_id.empty()) {
    frame["request_id"] = request_id;
  }
  return dump(frame);
}

} // namespace exai::net::protocol::frames
