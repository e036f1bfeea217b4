#include "net/ws/op_dispatcher.hpp"

#include "core/util/text.hpp"
#include "net/protocol/op_frames.hpp"
#include "net/protocol/op_protocol.hpp"

#include <variant>

namespace exai::net {

namespace {

using core::Errc;
using nlohmann::json;
namespace frames = protocol::frames;

std::string
dump(const json& value)
{
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

// Adds the request_id of `frame` (when it is a string) to `reply`.
void
echo_request_id(const json& frame, json& reply)
{
  if (const auto id = protocol::string_field(frame, "request_id")) {
    reply["request_id"] = *id;
  }
}

std::string
request_id_of(const json& frame)
{
  return std::string(protocol::string_field(frame, "request_id").value_or(""));
}

// Log fields a client controls are cut short.
constexpr std::size_t kLoggedClientName = 64;

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
  if (const auto* problem = std::get_if<protocol::FrameProblem>(&parsed)) {
    connection->send_text(protocol::problem_frame(*problem));
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
    log_->error("op failed id={} error=\"{}\"", connection->id(), core::printable(e.what(), 300));
    protocol::FrameProblem problem{code,
                                   e.what(),
                                   std::string(protocol::string_field(frame, "op").value_or("")),
                                   request_id_of(frame)};
    if (problem.request_id->empty()) {
      problem.request_id.reset();
    }
    connection->send_text(protocol::problem_frame(problem));
  }
}

void
OpDispatcher::on_hello(const std::shared_ptr<WsConnection>& connection, std::string_view payload)
{
  auto parsed = protocol::parse_frame(payload);
  if (std::holds_alternative<protocol::FrameProblem>(parsed)) {
    log_->info("session rejected peer={} reason=invalid_hello", connection->peer_ip());
    connection->send_text(protocol::hello_ack_error("invalid_hello"));
    connection->close(protocol::kCloseInvalidHello, "invalid_hello");
    return;
  }
  const json& frame = std::get<json>(parsed);
  if (protocol::string_field(frame, "op") != "hello") {
    log_->info("session rejected peer={} reason=missing_hello", connection->peer_ip());
    connection->send_text(protocol::hello_ack_error("missing_hello"));
    connection->close(protocol::kCloseMissingHello, "missing_hello");
    return;
  }
  const auto token = protocol::string_field(frame, "token");
  if (tokens_.required() && !(token && tokens_.accepts(*token))) {
    log_->warn("session rejected peer={} reason=unauthorized", connection->peer_ip());
    connection->send_text(protocol::hello_ack_error("unauthorized"));
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
  // Who owns the session's results besides the session: every client of the
  // same token, when one is configured; nobody else without one.
  std::string owner =
      tokens_.required() ? "token#" + std::to_string(tokens_.generation()) : std::string();
  if (!connection->greet(session_id, std::move(owner))) {
    // Every place is taken by greeted clients: refuse, and leave the session
    // as it was (no connection counted for it).
    sessions_.detach(session_id, now);
    log_->warn("session rejected peer={} reason=\"too many connections (MAX_CONNECTIONS)\"",
               connection->peer_ip());
    connection->close(protocol::kClosePolicy, "too many connections (MAX_CONNECTIONS)");
    return;
  }
  connection->send_text(protocol::hello_ack_ok(session_id));
  const auto client = protocol::string_field(frame, "client_name");
  log_->info("session opened id={} session={} peer={} resumed={} client=\"{}\"",
             connection->id(),
             core::short_id(session_id),
             connection->peer_ip(),
             resumed,
             core::printable(client.value_or(""), kLoggedClientName));
  if (resumed) {
    engine_.attach_session(session_id, connection);
  }
}

void
OpDispatcher::on_op(const std::shared_ptr<WsConnection>& connection, const json& frame)
{
  const auto op_field = frame.find("op");
  if (op_field == frame.end() || !op_field->is_string()) {
    connection->send_text(frames::op_error(Errc::invalid_request,
                                           "frame needs a string field \"op\"",
                                           json::object(),
                                           request_id_of(frame)));
    return;
  }
  const auto& op = op_field->get_ref<const std::string&>();
  log_->trace("op received id={} op={}", connection->id(), core::printable(op, 32));
  if (op == "call_tool") {
    call_tool(connection, frame);
  } else if (op == "list_tools") {
    std::call_once(tools_once_, [this] { tools_text_ = dump(engine_.list_tools()); });
    std::string reply = R"({"op":"list_tools_res",)";
    if (const auto id = protocol::string_field(frame, "request_id")) {
      reply += R"("request_id":)" + dump(json(*id)) + ",";
    }
    reply += R"("tools":)" + tools_text_ + "}";
    connection->send_text(std::move(reply));
  } else if (op == "cancel_tool") {
    cancel_tool(connection, frame);
  } else if (op == "health") {
    json reply{
        {"op", "health_res"}, {"ok", true}, {"health", health_ ? health_() : json::object()}};
    echo_request_id(frame, reply);
    connection->send_text(dump(reply));
  } else if (op == "rotate_token") {
    rotate_token(connection, frame);
  } else if (op == "hello") {
    connection->send_text(frames::op_error(Errc::invalid_request,
                                           "hello was already completed on this connection",
                                           json::object(),
                                           request_id_of(frame)));
  } else {
    connection->send_text(frames::op_error(Errc::protocol_error,
                                           "Unknown operation: " + core::printable(op, 64),
                                           json{{"operation", core::printable(op, 64)}},
                                           request_id_of(frame)));
  }
}

void
OpDispatcher::call_tool(const std::shared_ptr<WsConnection>& connection, const json& frame)
{
  auto parsed = protocol::parse_call_tool(frame, connection->session_id());
  if (auto* problem = std::get_if<protocol::FrameProblem>(&parsed)) {
    connection->send_text(protocol::problem_frame(*problem));
    return;
  }
  auto& request = std::get<core::CallRequest>(parsed);
  request.owner = connection->owner();
  log_->debug("call submitted id={} request_id={} tool={}",
              connection->id(),
              core::printable(request.request_id, 64),
              core::printable(request.tool, 64));
  engine_.submit(std::move(request), connection);
}

void
OpDispatcher::cancel_tool(const std::shared_ptr<WsConnection>& connection, const json& frame)
{
  const std::string request_id = request_id_of(frame);
  if (request_id.empty()) {
    connection->send_text(frames::op_error(Errc::validation_error,
                                           "cancel_tool needs a non-empty string request_id"));
    return;
  }
  if (!engine_.cancel(connection->session_id(), request_id)) {
    connection->send_text(
        frames::op_error(Errc::invalid_request,
                         "no call in flight with request_id " + core::printable(request_id, 64),
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
    if (!tokens_.required()) {
      reply["message"] = "no token is configured (EXAI_WS_TOKEN); rotate_token is disabled";
    }
  }
  echo_request_id(frame, reply);
  log_->info("token rotation id={} peer={} result={}",
             connection->id(),
             connection->peer_ip(),
             rotate_result_name(result));
  connection->send_text(dump(reply));
}

void
OpDispatcher::on_closed(const std::shared_ptr<WsConnection>& connection,
                        std::vector<std::string> unsent_results) noexcept
{
  try {
    const std::string& session_id = connection->session_id();
    if (!session_id.empty()) {
      sessions_.detach(session_id, SteadyClock::now());
      if (!unsent_results.empty()) {
        // Taken for delivery but never sent: kept for the session's resume.
        engine_.undelivered(session_id, unsent_results);
      }
      log_->debug("session detached id={} session={} unsent_results={}",
                  connection->id(),
                  core::short_id(session_id),
                  unsent_results.size());
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
