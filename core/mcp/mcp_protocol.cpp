#include "core/mcp/mcp_protocol.hpp"

#include "core/util/json_text.hpp"

#include <array>
#include <utility>

namespace exai::core::mcp {

namespace {

using nlohmann::json;

constexpr std::array<std::string_view, 4> kVersions = {
    "2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"};

Message
invalid(json id, int code, std::string message)
{
  Message m;
  m.kind = Message::Kind::invalid;
  m.id = std::move(id);
  m.error = RpcError{code, std::move(message), nullptr};
  return m;
}

bool
valid_id(const json& id)
{
  return id.is_string() || id.is_number_integer();
}

Action
respond(const json& id, const json& result)
{
  Action a;
  a.type = Action::Type::respond;
  a.id = id;
  a.response = result_response(id, result);
  return a;
}

Action
respond_error(const json& id, int code, std::string message, json data = nullptr)
{
  Action a;
  a.type = Action::Type::respond;
  a.id = id;
  a.response = error_response(id, RpcError{code, std::move(message), std::move(data)});
  return a;
}

Action
initialize(const Message& message, std::string_view server_version)
{
  const json& params = message.params;
  if (!params.is_object()) {
    return respond_error(message.id, kInvalidParams, "initialize needs params");
  }
  const auto version = params.find("protocolVersion");
  if (version == params.end() || !version->is_string()) {
    return respond_error(
        message.id, kInvalidParams, "initialize needs params.protocolVersion (a string)");
  }
  const auto capabilities = params.find("capabilities");
  if (capabilities != params.end() && !capabilities->is_object()) {
    return respond_error(message.id, kInvalidParams, "params.capabilities must be an object");
  }
  const std::string negotiated = negotiate_protocol_version(version->get<std::string>());
  json result = {
      {"protocolVersion", negotiated},
      {"capabilities",
       {{"tools", {{"listChanged", true}}},
        {"prompts", {{"listChanged", false}}},
        {"completions", json::object()},
        {"logging", json::object()}}},
      {"serverInfo", {{"name", "exai"}, {"version", std::string(server_version)}}},
      {"instructions",
       "exai forwards tool calls to the shared exai daemon (Kimi and GLM models) under its "
       "capacity limits. Errors such as OVER_CAPACITY come back as tool errors; retry later."},
  };
  Action a = respond(message.id, result);
  a.protocol_version = negotiated;
  return a;
}

Action
tools_call(const Message& message)
{
  const json& params = message.params;
  if (!params.is_object()) {
    return respond_error(message.id, kInvalidParams, "tools/call needs params");
  }
  const auto name = params.find("name");
  if (name == params.end() || !name->is_string() || name->get_ref<const std::string&>().empty()) {
    return respond_error(message.id, kInvalidParams, "tools/call needs params.name (a string)");
  }
  ToolCall call;
  call.name = name->get<std::string>();
  if (const auto arguments = params.find("arguments");
      arguments != params.end() && !arguments->is_null()) {
    if (!arguments->is_object()) {
      return respond_error(message.id, kInvalidParams, "params.arguments must be an object");
    }
    call.arguments = *arguments;
  }
  if (const auto meta = params.find("_meta"); meta != params.end() && meta->is_object()) {
    if (const auto token = meta->find("progressToken"); token != meta->end()) {
      if (!token->is_string() && !token->is_number_integer()) {
        return respond_error(message.id,
                             kInvalidParams,
                             "params._meta.progressToken must be a string or an integer");
      }
      call.progress_token = *token;
    }
  }
  Action a;
  a.type = Action::Type::call_tool;
  a.id = message.id;
  a.call = std::move(call);
  return a;
}

std::string
describe_error(const json& error)
{
  const std::string code = error.value("code", std::string("INTERNAL_ERROR"));
  std::string message = error.value("message", std::string("the call failed"));
  std::string text = "exai error " + code + ": " + message;
  if (const auto details = error.find("details");
      details != error.end() && details->is_object() && !details->empty()) {
    if (const auto retry = details->find("retry_after"); retry != details->end()) {
      text += " (retry after " + retry->dump() + " s)";
    }
    text += "\ndetails: " + details->dump();
  }
  return text;
}

} // namespace

bool
supported_protocol_version(std::string_view version) noexcept
{
  for (const auto v : kVersions) {
    if (v == version) {
      return true;
    }
  }
  return false;
}

std::string
supported_protocol_versions_text()
{
  std::string text;
  for (const auto v : kVersions) {
    text += (text.empty() ? "" : ", ") + std::string(v);
  }
  return text;
}

std::optional<LogLevel>
log_level_from(std::string_view name) noexcept
{
  for (std::size_t i = 0; i < kLogLevelNames.size(); ++i) {
    if (kLogLevelNames[i] == name) {
      return static_cast<LogLevel>(i);
    }
  }
  return std::nullopt;
}

std::string
log_notification(LogLevel level, std::string_view logger, const json& data)
{
  return json{{"jsonrpc", "2.0"},
              {"method", "notifications/message"},
              {"params",
               {{"level", std::string(kLogLevelNames[static_cast<std::size_t>(level)])},
                {"logger", std::string(logger)},
                {"data", data}}}}
      .dump();
}

std::optional<std::string>
call_outcome_notification(LogLevel min,
                          std::string_view request_id,
                          std::string_view tool,
                          std::string_view error_code,
                          std::string_view error_message)
{
  const bool failed = !error_code.empty();
  const auto level = failed ? LogLevel::warning : LogLevel::info;
  if (level < min) {
    return std::nullopt;
  }
  json data = {{"request_id", std::string(request_id)},
               {"tool", std::string(tool.substr(0, 64))},
               {"outcome", failed ? "error" : "ok"}};
  if (failed) {
    data["code"] = std::string(error_code);
    data["message"] = std::string(error_message);
  }
  return log_notification(level, "exai.call", data);
}

std::string
negotiate_protocol_version(std::string_view requested)
{
  return std::string(supported_protocol_version(requested) ? requested : kLatestProtocolVersion);
}

Message
parse_message(std::string_view text)
{
  auto parsed = parse_json(text);
  if (const auto* problem = std::get_if<JsonProblem>(&parsed)) {
    // Answer with the request's id when it can still be read, so the client
    // is not left waiting.
    json id = nullptr;
    if (const auto raw = top_level_string(text, "id")) {
      id = *raw;
    }
    return invalid(id,
                   kParseError,
                   problem->kind == JsonProblem::Kind::too_deep
                       ? "Parse error: " + problem->message
                       : std::string("Parse error: not valid JSON"));
  }
  return classify(std::get<json>(parsed));
}

bool
batches_allowed(std::string_view protocol_version) noexcept
{
  return protocol_version == "2024-11-05" || protocol_version == "2025-03-26";
}

std::optional<Batch>
parse_batch(std::string_view text)
{
  const auto start = text.find_first_not_of(" \t\r\n");
  if (start == std::string_view::npos || text[start] != '[') {
    return std::nullopt;
  }
  auto parsed = parse_json(text);
  if (std::holds_alternative<JsonProblem>(parsed)) {
    return Batch{{}, parse_message(text)}; // its parse error
  }
  const json& items = std::get<json>(parsed);
  if (!items.is_array()) {
    return std::nullopt;
  }
  if (items.empty() || items.size() > kMaxBatch) {
    return Batch{{},
                 invalid(nullptr,
                         kInvalidRequest,
                         items.empty() ? "Invalid Request: empty batch"
                                       : "Invalid Request: a batch holds at most " +
                                             std::to_string(kMaxBatch) + " messages")};
  }
  Batch batch;
  batch.messages.reserve(items.size());
  for (const auto& item : items) {
    batch.messages.push_back(
        item.is_array()
            ? invalid(nullptr, kInvalidRequest, "Invalid Request: a batch inside a batch")
            : classify(item));
  }
  return batch;
}

std::string
batch_response(const std::vector<std::string>& responses)
{
  std::string out = "[";
  for (const auto& response : responses) {
    out += (out.size() > 1 ? "," : "") + response;
  }
  return out + "]";
}

Message
classify(const json& value)
{
  if (value.is_array()) {
    return invalid(nullptr,
                   kInvalidRequest,
                   "Invalid Request: JSON-RPC batches are not supported in this session (only "
                   "2024-11-05 and 2025-03-26 allow them)");
  }
  if (!value.is_object()) {
    return invalid(nullptr, kInvalidRequest, "Invalid Request: not a JSON-RPC object");
  }
  const auto id_it = value.find("id");
  const bool has_id = id_it != value.end();
  json id = has_id && valid_id(*id_it) ? *id_it : json(nullptr);
  const auto version = value.find("jsonrpc");
  if (version == value.end() || *version != "2.0") {
    return invalid(id, kInvalidRequest, "Invalid Request: \"jsonrpc\" must be \"2.0\"");
  }
  if (has_id && !valid_id(*id_it)) {
    return invalid(nullptr, kInvalidRequest, "Invalid Request: id must be a string or an integer");
  }
  const auto method = value.find("method");
  if (method == value.end()) {
    if (has_id && (value.contains("result") || value.contains("error"))) {
      Message m;
      m.kind = Message::Kind::response;
      m.id = std::move(id);
      return m;
    }
    return invalid(id, kInvalidRequest, "Invalid Request: no method");
  }
  if (!method->is_string()) {
    return invalid(id, kInvalidRequest, "Invalid Request: method must be a string");
  }
  json params = nullptr;
  if (const auto p = value.find("params"); p != value.end()) {
    if (!p->is_object() && !p->is_null()) {
      if (!has_id) {
        // A bad notification gets no answer; it is dropped.
        return invalid(nullptr, kInvalidParams, "params must be an object");
      }
      Message m = invalid(id, kInvalidParams, "Invalid params: params must be an object");
      return m;
    }
    params = *p;
  }
  Message m;
  m.kind = has_id ? Message::Kind::request : Message::Kind::notification;
  m.id = std::move(id);
  m.method = method->get<std::string>();
  m.params = std::move(params);
  return m;
}

std::string
result_response(const json& id, const json& result)
{
  return json{{"jsonrpc", "2.0"}, {"id", id}, {"result", result}}.dump();
}

std::string
error_response(const json& id, const RpcError& error)
{
  json body = {{"code", error.code}, {"message", error.message}};
  if (!error.data.is_null()) {
    body["data"] = error.data;
  }
  return json{{"jsonrpc", "2.0"}, {"id", id}, {"error", std::move(body)}}.dump();
}

std::string
progress_notification(const json& token, std::uint64_t progress, std::string_view message)
{
  json params = {{"progressToken", token}, {"progress", progress}};
  if (!message.empty()) {
    params["message"] = std::string(message);
  }
  return json{{"jsonrpc", "2.0"}, {"method", "notifications/progress"}, {"params", params}}.dump();
}

Action
route(const Message& message, std::string_view server_version)
{
  switch (message.kind) {
  case Message::Kind::invalid:
    // An invalid message that is clearly a notification has nobody to answer.
    if (message.error.code == kInvalidParams && message.id.is_null()) {
      return {};
    }
    return respond_error(message.id, message.error.code, message.error.message);
  case Message::Kind::response:
    return {}; // exai sends no requests; stray responses are ignored
  case Message::Kind::notification: {
    if (message.method == "notifications/cancelled") {
      const auto& params = message.params;
      if (params.is_object()) {
        if (const auto id = params.find("requestId"); id != params.end() && valid_id(*id)) {
          Action a;
          a.type = Action::Type::cancel;
          a.cancel_id = *id;
          return a;
        }
      }
    }
    return {}; // notifications/initialized and unknown notifications
  }
  case Message::Kind::request:
    break;
  }
  const std::string& method = message.method;
  if (method == "initialize") {
    return initialize(message, server_version);
  }
  if (method == "ping") {
    return respond(message.id, json::object());
  }
  if (method == "tools/list" || method == "prompts/list") {
    // exai answers every list in one page and never issues a cursor.
    if (message.params.is_object() && message.params.contains("cursor")) {
      return respond_error(message.id,
                           kInvalidParams,
                           "Invalid params: unknown cursor (exai lists everything in one page)",
                           json{{"cursor", message.params["cursor"]}});
    }
    Action a;
    a.type = method == "tools/list" ? Action::Type::list_tools : Action::Type::list_prompts;
    a.id = message.id;
    return a;
  }
  if (method == "completion/complete") {
    const json& params = message.params;
    if (!params.is_object() || !params.contains("ref") || !params["ref"].is_object() ||
        !params.contains("argument") || !params["argument"].is_object()) {
      return respond_error(message.id,
                           kInvalidParams,
                           "completion/complete needs params.ref and params.argument (objects)");
    }
    Action a;
    a.type = Action::Type::complete;
    a.id = message.id;
    a.params = params;
    return a;
  }
  if (method == "prompts/get") {
    if (!message.params.is_object() || !message.params.contains("name") ||
        !message.params["name"].is_string()) {
      return respond_error(message.id, kInvalidParams, "prompts/get needs params.name (a string)");
    }
    Action a;
    a.type = Action::Type::get_prompt;
    a.id = message.id;
    a.params = message.params;
    return a;
  }
  if (method == "logging/setLevel") {
    const json& params = message.params;
    const auto level = params.is_object() && params.contains("level") && params["level"].is_string()
                           ? log_level_from(params["level"].get<std::string>())
                           : std::nullopt;
    if (!level) {
      return respond_error(
          message.id,
          kInvalidParams,
          "Invalid params: params.level must be one of debug, info, notice, "
          "warning, error, critical, alert, emergency",
          json{{"level", params.is_object() ? params.value("level", json()) : json()}});
    }
    Action a = respond(message.id, json::object());
    a.log_level = level;
    return a;
  }
  if (method == "tools/call") {
    return tools_call(message);
  }
  return respond_error(
      message.id, kMethodNotFound, "Method not found: " + method, json{{"method", method}});
}

json
tools_list_result(const json& daemon_tools)
{
  json tools = json::array();
  if (daemon_tools.is_array()) {
    for (const auto& tool : daemon_tools) {
      if (!tool.is_object() || !tool.contains("name") || !tool["name"].is_string()) {
        continue;
      }
      json schema = tool.value("inputSchema", json::object());
      if (!schema.is_object()) {
        schema = json::object();
      }
      if (!schema.contains("type")) {
        schema["type"] = "object";
      }
      json entry = {{"name", tool["name"]},
                    {"description", tool.value("description", std::string())},
                    {"inputSchema", std::move(schema)}};
      // Newer daemons describe more; pass on what MCP defines.
      for (const char* key : {"title", "outputSchema", "annotations"}) {
        if (const auto it = tool.find(key); it != tool.end() && !it->is_null()) {
          entry[key] = *it;
        }
      }
      tools.push_back(std::move(entry));
    }
  }
  return json{{"tools", std::move(tools)}};
}

std::string
tool_call_response(const json& id, const json& res)
{
  if (const auto error = res.find("error"); error != res.end() && error->is_object()) {
    if (error->value("code", std::string()) == "TOOL_NOT_FOUND") {
      return error_response(id,
                            RpcError{kInvalidParams,
                                     error->value("message", std::string("Unknown tool")),
                                     error->value("details", json(nullptr))});
    }
    return tool_error_response(id, describe_error(*error));
  }
  json content = json::array();
  json structured = nullptr;
  bool envelope_error = false;
  if (const auto outputs = res.find("outputs"); outputs != res.end() && outputs->is_array()) {
    for (const auto& output : *outputs) {
      if (output.is_object() && output.contains("text") && output["text"].is_string()) {
        const std::string& text = output["text"].get_ref<const std::string&>();
        // A tool envelope (SPEC §2) that reports an error is an error result.
        json envelope = json::parse(text, nullptr, false);
        if (envelope.is_object() && envelope.value("status", std::string()) == "error") {
          envelope_error = true;
        }
        if (structured.is_null() && envelope.is_object() && envelope.contains("status")) {
          structured = std::move(envelope); // the envelope is the outputSchema's object
        }
        content.push_back({{"type", "text"}, {"text", text}});
      }
    }
  }
  if (content.empty() && res.contains("text") && res["text"].is_string()) {
    content.push_back({{"type", "text"}, {"text", res["text"]}});
  }
  json result = {{"content", std::move(content)}, {"isError", envelope_error}};
  if (!structured.is_null()) {
    result["structuredContent"] = std::move(structured);
  }
  return result_response(id, result);
}

std::string
tool_call_response(const json& id, const ToolResult& result)
{
  json frame = json::object();
  if (const auto* success = std::get_if<ToolSuccess>(&result)) {
    json outputs = json::array();
    for (const auto& text : success->outputs) {
      outputs.push_back({{"type", "text"}, {"text", text}});
    }
    frame["outputs"] = std::move(outputs);
  } else {
    const auto& failure = std::get<ToolFailure>(result);
    frame["error"] = {{"code", protocol_code(failure.code)},
                      {"message", failure.message},
                      {"details", failure.details}};
  }
  return tool_call_response(id, frame);
}

std::string
tool_error_response(const json& id, std::string_view text)
{
  return result_response(
      id,
      json{{"content", json::array({{{"type", "text"}, {"text", std::string(text)}}})},
           {"isError", true}});
}

CallTranslator::CallTranslator(json id, json progress_token, Clock::time_point now)
    : id_(std::move(id))
    , token_(std::move(progress_token))
    , last_sent_(now)
{
}

std::string
CallTranslator::progress(std::string_view message, Clock::time_point now)
{
  last_sent_ = now;
  return progress_notification(token_, ++progress_, message);
}

std::vector<std::string>
CallTranslator::on_frame(const json& frame, Clock::time_point now)
{
  std::vector<std::string> out;
  if (done_ || !frame.is_object()) {
    return out;
  }
  const std::string op = frame.value("op", std::string());
  if (op == "call_tool_res") {
    done_ = true;
    out.push_back(tool_call_response(id_, frame));
    return out;
  }
  if (token_.is_null()) {
    return out;
  }
  if (op == "progress") {
    if (const auto note = frame.find("note"); note != frame.end() && note->is_string()) {
      last_note_ = note->get<std::string>();
      out.push_back(progress(last_note_, now));
    } else {
      out.push_back(progress("running", now));
    }
  } else if (op == "call_tool_ack") {
    last_note_ = "running";
    out.push_back(progress("accepted by the exai daemon, running", now));
  }
  return out;
}

std::optional<std::string>
CallTranslator::on_progress(std::string_view note, Clock::time_point now)
{
  if (done_ || token_.is_null()) {
    return std::nullopt;
  }
  if (note.empty()) {
    return progress("running", now);
  }
  last_note_ = std::string(note);
  return progress(last_note_, now);
}

std::optional<std::string>
CallTranslator::on_ack(Clock::time_point now)
{
  if (done_ || token_.is_null()) {
    return std::nullopt;
  }
  last_note_ = "running";
  return progress("accepted by the exai daemon, running", now);
}

std::string
CallTranslator::on_result(const ToolResult& result)
{
  done_ = true;
  return tool_call_response(id_, result);
}

std::optional<std::string>
CallTranslator::heartbeat(Clock::time_point now)
{
  if (done_ || token_.is_null() || now - last_sent_ < kHeartbeat) {
    return std::nullopt;
  }
  return progress(last_note_.empty() ? "waiting" : last_note_, now);
}

} // namespace exai::core::mcp
