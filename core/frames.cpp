#include "core/frames.hpp"

#include <chrono>

namespace exai::core::frames {

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
  return {{"code", protocol_code(code)},
          {"message", message},
          {"details", details.is_null() ? nlohmann::json::object() : details}};
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
  nlohmann::json frame = {
      {"op", "progress"}, {"request_id", request_id}, {"name", name}, {"t", epoch_seconds()}};
  if (!note.empty()) {
    frame["note"] = note;
  }
  return dump(frame);
}

std::string
ack(std::string_view request_id, std::string_view name, double timeout_s)
{
  return dump({{"op", "call_tool_ack"},
               {"request_id", request_id},
               {"accepted", true},
               {"timeout", timeout_s},
               {"name", name}});
}

std::string
result(std::string_view request_id, const std::vector<std::string>& outputs)
{
  nlohmann::json items = nlohmann::json::array();
  std::string joined;
  for (const auto& text : outputs) {
    items.push_back({{"type", "text"}, {"text", text}});
    if (!joined.empty()) {
      joined += "\n\n";
    }
    joined += text;
  }
  return dump(
      {{"op", "call_tool_res"}, {"request_id", request_id}, {"outputs", items}, {"text", joined}});
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

} // namespace exai::core::frames
