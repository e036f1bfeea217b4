#include "net/ws/op_dispatcher.hpp"

#include "net/protocol/op_protocol.hpp"

#include <variant>

namespace exai::net {

namespace {

using core::Errc;
using nlohmann::json;

std::string
dump(const json& value)
{
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

// Adds the request_id of `frame` (any JSON type) to `reply` when present.
void
echo_request_id(const json& frame, json& reply)
{
  if (const auto it = frame.find("request_id"); it != frame.end()) {
    reply["request_id"] = *it;
  }
}

std::optional<std::string>
request_id_of(const json& frame)
{
  if (const auto id = protocol::string_field(frame, "request_id"); id && !id->empty()) {
    return std::string(*id);
  }
  return std::nullopt;
}

} // namespace

OpDispatcher::OpDispatcher(core::CallEngine& engine,
                           TokenStore& tokens,
                           SessionRegistry& sessions,
                           HealthFn health,
                           std::shared_ptr<spdlog::logger> log)
    : engine_(engine)
    , tokens_(tokens)
    , sessions_(sessions)
    , health_(std::move(health))
    , log_(std::move(log))
{
}

void
OpDispatcher::on_message(const std::shared_ptr<WsConnection>& connection, std::string_view payload)
{
  if (!connection->greeted()) {
    on_hello(connection, payload);
    return;
  }
  auto parsed = protocol::parse_frame(payload);
  if (const auto* failure = std::get_if<protocol::ParseFailure>(&parsed)) {
    connection->send(protocol::error_frame(Errc::validation_error,
                                           *failure == protocol::ParseFailure::not_json
                                               ? "frame is not valid JSON"
                                               : "frame must be a JSON object"));
    return;
  }
  const json& frame = std::get<json>(parsed);
  // The per-connection catch site (STYLE B4): a failing engine call becomes
  // an error frame the client can match, never a silent drop.
  try {
    on_op(connection, frame);
  } catch (const std::exception& e) {
    const auto* error = dynamic_cast<const core::Error*>(&e);
    const Errc code = error != nullptr ? error->code() : Errc::internal_error;
    log_->error("op failed id={} error=\"{}\"", connection->id(), e.what());
    const auto request_id = request_id_of(frame);
    if (request_id && protocol::string_field(frame, "op") == "call_tool") {
      connection->send(protocol::call_error_frame(*request_id, code, e.what()));
    } else {
      connection->send(protocol::error_frame(code, e.what(), json::object(), request_id));
    }
  }
}

void
OpDispatcher::on_hello(const std::shared_ptr<WsConnection>& connection, std::string_view payload)
{
  auto parsed = protocol::parse_frame(payload);
  if (std::holds_alternative<protocol::ParseFailure>(parsed)) {
    log_->info("session rejected peer={} reason=invalid_hello", connection->peer_ip());
    connection->send(protocol::hello_ack_error("invalid_hello"));
    connection->close(protocol::kCloseInvalidHello, "invalid_hello");
    return;
  }
  const json& frame = std::get<json>(parsed);
  if (protocol::string_field(frame, "op") != "hello") {
    log_->info("session rejected peer={} reason=missing_hello", connection->peer_ip());
    connection->send(protocol::hello_ack_error("missing_hello"));
    connection->close(protocol::kCloseMissingHello, "missing_hello");
    return;
  }
  const auto token = protocol::string_field(frame, "token");
  if (tokens_.required() && !(token && tokens_.accepts(*token))) {
    log_->warn("session rejected peer={} reason=unauthorized", connection->peer_ip());
    connection->send(protocol::hello_ack_error("unauthorized"));
    connection->close(protocol::kCloseUnauthorized, "unauthorized");
    return;
  }
  const auto now = SteadyClock::now();
  std::string session_id;
  bool resumed = false;
  if (const auto wanted = protocol::string_field(frame, "session_id"); wanted && !wanted->empty()) {
    std::string candidate(*wanted);
    if (sessions_.resume(candidate, now)) {
      session_id = std::move(candidate);
      resumed = true;
    }
  }
  if (session_id.empty()) {
    session_id = sessions_.create(now);
  }
  connection->set_session_id(session_id);
  connection->mark_greeted();
  connection->send(protocol::hello_ack_ok(session_id));
  const auto client = protocol::string_field(frame, "client_name");
  log_->info("session opened id={} peer={} resumed={} client=\"{}\"",
             connection->id(),
             connection->peer_ip(),
             resumed,
             client.value_or(""));
  if (resumed) {
    engine_.attach_session(session_id, connection);
  }
}

void
OpDispatcher::on_op(const std::shared_ptr<WsConnection>& connection, const json& frame)
{
  const auto op_field = frame.find("op");
  if (op_field == frame.end() || !op_field->is_string()) {
    connection->send(protocol::error_frame(Errc::invalid_request,
                                           "frame needs a string field \"op\"",
                                           json::object(),
                                           request_id_of(frame)));
    return;
  }
  const auto& op = op_field->get_ref<const std::string&>();
  log_->trace("op received id={} op={}", connection->id(), op);
  if (op == "call_tool") {
    call_tool(connection, frame);
  } else if (op == "list_tools") {
    json reply{{"op", "list_tools_res"}, {"tools", engine_.list_tools()}};
    echo_request_id(frame, reply);
    connection->send(dump(reply));
  } else if (op == "cancel_tool") {
    cancel_tool(connection, frame);
  } else if (op == "health") {
    json reply{
        {"op", "health_res"}, {"ok", true}, {"health", health_ ? health_() : json::object()}};
    echo_request_id(frame, reply);
    connection->send(dump(reply));
  } else if (op == "rotate_token") {
    rotate_token(connection, frame);
  } else if (op == "hello") {
    connection->send(protocol::error_frame(Errc::invalid_request,
                                           "hello was already completed on this connection",
                                           json{{"session_id", connection->session_id()}},
                                           request_id_of(frame)));
  } else {
    connection->send(protocol::error_frame(Errc::protocol_error,
                                           "Unknown operation: " + op,
                                           json{{"operation", op}},
                                           request_id_of(frame)));
  }
}

void
OpDispatcher::call_tool(const std::shared_ptr<WsConnection>& connection, const json& frame)
{
  auto parsed = protocol::parse_call_tool(frame, connection->session_id());
  if (auto* problem = std::get_if<protocol::CallToolProblem>(&parsed)) {
    if (problem->request_id) {
      connection->send(protocol::call_error_frame(
          *problem->request_id, Errc::validation_error, problem->message));
    } else {
      connection->send(protocol::error_frame(Errc::validation_error, problem->message));
    }
    return;
  }
  auto& request = std::get<core::CallRequest>(parsed);
  log_->debug("call submitted id={} request_id={} tool={}",
              connection->id(),
              request.request_id,
              request.tool);
  engine_.submit(std::move(request), connection);
}

void
OpDispatcher::cancel_tool(const std::shared_ptr<WsConnection>& connection, const json& frame)
{
  const auto request_id = request_id_of(frame);
  if (!request_id) {
    connection->send(protocol::error_frame(Errc::validation_error,
                                           "cancel_tool needs a non-empty string request_id"));
    return;
  }
  if (!engine_.cancel(connection->session_id(), *request_id)) {
    connection->send(protocol::error_frame(Errc::invalid_request,
                                           "no call in flight with request_id " + *request_id,
                                           json::object(),
                                           request_id));
  }
}

void
OpDispatcher::rotate_token(const std::shared_ptr<WsConnection>& connection, const json& frame)
{
  const auto result =
      tokens_.rotate(protocol::string_field(frame, "old"), protocol::string_field(frame, "new"));
  json reply{{"op", "rotate_token_res"}, {"ok", result == RotateResult::ok}};
  if (result != RotateResult::ok) {
    reply["error"] = rotate_result_name(result);
  }
  echo_request_id(frame, reply);
  log_->info("token rotation id={} peer={} result={}",
             connection->id(),
             connection->peer_ip(),
             rotate_result_name(result));
  connection->send(dump(reply));
}

void
OpDispatcher::on_closed(const std::shared_ptr<WsConnection>& connection) noexcept
{
  try {
    const std::string session_id = connection->session_id();
    if (!session_id.empty()) {
      sessions_.detach(session_id, SteadyClock::now());
      log_->debug("session detached id={} session={}", connection->id(), session_id.substr(0, 6));
    }
  } catch (const std::exception& e) {
    log_->error("session detach failed error=\"{}\"", e.what());
  }
}

void
OpDispatcher::on_tick(SteadyClock::time_point now) noexcept
{
  if (now - last_sweep_ < std::chrono::seconds(1)) {
    return;
  }
  last_sweep_ = now;
  try {
    sessions_.sweep(now);
  } catch (const std::exception& e) {
    log_->error("session sweep failed error=\"{}\"", e.what());
  }
}

} // namespace exai::net
