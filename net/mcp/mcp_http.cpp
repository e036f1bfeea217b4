#include "net/mcp/mcp_http.hpp"

#include "core/log.hpp"
#include "core/mcp/mcp_prompts.hpp"
#include "core/mcp/mcp_protocol.hpp"
#include "core/tools/tool_registry.hpp"
#include "core/util/random_id.hpp"
#include "core/util/text.hpp"
#include "net/http/response_stream.hpp"
#include "net/mcp/mcp_http_call.hpp"
#include "net/protocol/op_protocol.hpp"

#include <Poco/Exception.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <istream>
#include <optional>
#include <ostream>
#include <utility>
#include <vector>

namespace exai::net {

namespace {

using nlohmann::json;
using Poco::Net::HTTPResponse;
using Poco::Net::HTTPServerRequest;
using Poco::Net::HTTPServerResponse;
namespace mcp = core::mcp;

constexpr std::string_view kSessionHeader = "Mcp-Session-Id";
constexpr std::string_view kVersionHeader = "MCP-Protocol-Version";

void
send_rpc_error(HTTPServerResponse& response,
               HTTPResponse::HTTPStatus status,
               const json& id,
               int code,
               const std::string& message)
{
  HttpRouter::send_json(
      response, status, mcp::error_response(id, mcp::RpcError{code, message, {}}));
}

void
send_empty(HTTPServerResponse& response, HTTPResponse::HTTPStatus status)
{
  response.setStatusAndReason(status);
  response.setContentLength(0);
  response.send();
}

bool
accepts(const HTTPServerRequest& request, std::string_view type)
{
  const std::string accept = request.get("Accept", "");
  return accept.find(type) != std::string::npos || accept.find("*/*") != std::string::npos;
}

std::optional<std::string>
read_body(HTTPServerRequest& request, std::size_t max_bytes)
{
  if (request.hasContentLength() &&
      request.getContentLength64() > static_cast<Poco::Int64>(max_bytes)) {
    return std::nullopt;
  }
  std::string body;
  std::istream& in = request.stream();
  char buffer[8192];
  while (in.read(buffer, sizeof buffer) || in.gcount() > 0) {
    body.append(buffer, static_cast<std::size_t>(in.gcount()));
    if (body.size() > max_bytes) {
      return std::nullopt;
    }
  }
  return body;
}

} // namespace

McpHttpService::McpHttpService(core::CallEngine& engine,
                               const core::DaemonConfig& config,
                               TokenStore& tokens,
                               McpHttpOptions options,
                               std::shared_ptr<spdlog::logger> log)
    : engine_(engine)
    , config_(config)
    , tokens_(tokens)
    , options_([&] {
      if (options.max_finished_stream_bytes == 0) {
        options.max_finished_stream_bytes = config.result_max_bytes;
      }
      return options;
    }())
    , log_(std::move(log))
    , id_prefix_("mcph-" + core::random_hex(8) + "-")
    , instance_(core::random_hex(8))
    , ids_(config.state_dir)
    , handoff_(config.state_dir, config.result_ttl)
{
  handoff_.sweep();
}

McpHttpService::~McpHttpService()
{
  // Calls may outlive the service (an engine thread delivering a result):
  // none may keep a timer on the scheduler that dies with it.
  std::vector<std::shared_ptr<McpHttpCall>> calls;
  {
    const std::lock_guard lock(mutex_);
    for (auto& [key, stream] : streams_) {
      calls.push_back(stream.call);
    }
  }
  for (const auto& call : calls) {
    call->stop_timer();
  }
}

bool
McpHttpService::admit(HttpExchange& exchange)
{
  const std::string authorization = exchange.request().get("Authorization", "");
  if (!tokens_.accepts_bearer(authorization)) {
    log_->warn("mcp request refused reason=unauthorized peer={}", exchange.peer_ip());
    exchange.response().set("WWW-Authenticate", "Bearer");
    send_rpc_error(exchange.response(),
                   HTTPResponse::HTTP_UNAUTHORIZED,
                   nullptr,
                   mcp::kInvalidRequest,
                   "Unauthorized: missing or wrong Authorization: Bearer token (EXAI_WS_TOKEN)");
    return false;
  }
  return true;
}

void
McpHttpService::sweep(Clock::time_point now)
{
  // Finished streams are kept for resuming clients as long as results are
  // (EXAI_WS_RESULT_TTL_SECS), at most max_finished_streams of them and
  // max_finished_stream_bytes together.
  std::size_t finished = 0;
  std::size_t bytes = 0;
  for (auto it = streams_.begin(); it != streams_.end();) {
    if (it->second.finished_at && now - *it->second.finished_at > config_.result_ttl) {
      it = streams_.erase(it);
    } else {
      finished += it->second.finished_at ? 1 : 0;
      bytes += it->second.bytes;
      ++it;
    }
  }
  while (finished > options_.max_finished_streams ||
         (finished > 0 && bytes > options_.max_finished_stream_bytes)) {
    auto oldest = streams_.end();
    for (auto it = streams_.begin(); it != streams_.end(); ++it) {
      if (it->second.finished_at &&
          (oldest == streams_.end() || *it->second.finished_at < *oldest->second.finished_at)) {
        oldest = it;
      }
    }
    bytes -= oldest->second.bytes;
    streams_.erase(oldest);
    --finished;
  }
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    if (it->second.calls.empty() && now - it->second.last_used > config_.session_timeout) {
      log_->debug("mcp session expired id={}", core::short_id(it->first));
      it = sessions_.erase(it);
    } else {
      ++it;
    }
  }
}

std::size_t
McpHttpService::session_count()
{
  const std::lock_guard lock(mutex_);
  sweep(Clock::now());
  return sessions_.size();
}

std::size_t
McpHttpService::active_calls()
{
  const std::lock_guard lock(mutex_);
  std::size_t n = 0;
  for (const auto& [id, session] : sessions_) {
    n += session.calls.size();
  }
  return n;
}

std::string
McpHttpService::create_session(const std::string& protocol_version)
{
  const auto now = Clock::now();
  std::string id = ids_.issue(protocol_version);
  const std::lock_guard lock(mutex_);
  sweep(now);
  if (!make_room()) {
    return {};
  }
  sessions_.emplace(id, Session{protocol_version, now, {}, {}});
  return id;
}

bool
McpHttpService::make_room()
{
  if (sessions_.size() < options_.max_sessions) {
    return true;
  }
  auto oldest = sessions_.end();
  for (auto it = sessions_.begin(); it != sessions_.end(); ++it) {
    if (it->second.calls.empty() &&
        (oldest == sessions_.end() || it->second.last_used < oldest->second.last_used)) {
      oldest = it;
    }
  }
  if (oldest == sessions_.end()) {
    return false;
  }
  sessions_.erase(oldest);
  return true;
}

McpHttpService::Session*
McpHttpService::find_session(const std::string& id, Clock::time_point now)
{
  if (const auto it = sessions_.find(id); it != sessions_.end()) {
    return &it->second;
  }
  const auto version = ids_.verify(id);
  if (!version) {
    return nullptr;
  }
  // A client keeping the ids of sessions it made evicted cannot grow the
  // table past the limit by bringing them all back.
  if (!make_room()) {
    log_->warn("mcp session not re-adopted id={}: every session has calls (max {})",
               core::short_id(id),
               options_.max_sessions);
    return nullptr;
  }
  log_->info("mcp session re-adopted id={} protocol={}", core::short_id(id), *version);
  return &sessions_.emplace(id, Session{*version, now, {}, {}}).first->second;
}

void
McpHttpService::end_call(const std::string& session_id,
                         const std::string& key,
                         const std::string& stream_key)
{
  std::shared_ptr<McpHttpCall> call; // released outside the lock
  const std::lock_guard lock(mutex_);
  const auto now = Clock::now();
  if (const auto it = sessions_.find(session_id); it != sessions_.end()) {
    if (const auto c = it->second.calls.find(key); c != it->second.calls.end()) {
      call = std::move(c->second);
      it->second.calls.erase(c);
    }
    it->second.last_used = now;
  }
  // Kept for resuming clients; the next request's sweep bounds them (every
  // stream began with a request that swept), so ending a call walks nothing.
  if (const auto stream = streams_.find(stream_key); stream != streams_.end()) {
    stream->second.finished_at = now;
    stream->second.bytes = stream->second.call ? stream->second.call->kept_bytes() : 0;
  }
}

void
McpHttpService::handle_get(HttpExchange& exchange)
{
  if (!admit(exchange)) {
    return;
  }
  auto& request = exchange.request();
  auto& response = exchange.response();
  if (!request.has("Last-Event-ID")) {
    response.set("Allow", "GET, POST, DELETE");
    send_rpc_error(response,
                   HTTPResponse::HTTP_METHOD_NOT_ALLOWED,
                   nullptr,
                   mcp::kInvalidRequest,
                   "Method Not Allowed: exai sends no server-initiated messages; GET /mcp only "
                   "resumes a tools/call stream (Last-Event-ID); POST to /mcp");
    return;
  }
  const std::string session_id = request.get(std::string(kSessionHeader), "");
  const auto last = mcp::parse_event_id(request.get("Last-Event-ID"));
  if (!last) {
    send_rpc_error(response,
                   HTTPResponse::HTTP_BAD_REQUEST,
                   nullptr,
                   mcp::kInvalidRequest,
                   "Bad Request: Last-Event-ID " +
                       core::printable(request.get("Last-Event-ID"), 80) +
                       " is not an event id this server issued");
    return;
  }
  std::shared_ptr<McpHttpCall> call;
  {
    const std::lock_guard lock(mutex_);
    const auto now = Clock::now();
    sweep(now);
    Session* session = session_id.empty() ? nullptr : find_session(session_id, now);
    if (session == nullptr) {
      send_rpc_error(response, HTTPResponse::HTTP_NOT_FOUND, nullptr, -32001, "Session not found");
      return;
    }
    session->last_used = now;
    if (last->instance == instance_) {
      if (const auto it = streams_.find(last->stream_key());
          it != streams_.end() && it->second.session_id == session_id) {
        call = it->second.call;
      }
    }
  }
  std::optional<McpHandoff> handed;
  if (!call && last->instance != instance_) {
    // A call the previous daemon refused while stopping: it runs here.
    handed = handoff_.take(last->stream_key(), session_id);
    if (handed) {
      call = make_call(session_id,
                       handed->id,
                       handed->tool,
                       handed->arguments,
                       handed->progress_token,
                       true,
                       *last);
      if (!register_call(session_id, call, true, last->stream_key())) {
        call.reset();
      }
    }
  }
  response.setStatusAndReason(HTTPResponse::HTTP_OK);
  response.setContentType("text/event-stream");
  response.set("Cache-Control", "no-cache");
  response.set(std::string(kSessionHeader), session_id);
  auto stream = exchange.start_stream();
  if (handed && call) {
    log_->info("mcp call taken over from the previous daemon tool={} request_id={}",
               core::printable(handed->tool, 64),
               call->request_id());
    call->resume(stream, last->seq);
    submit(call, handed->tool, handed->arguments);
    return;
  }
  if (!call) {
    // Never a hang: the call's events are gone (a daemon restart, or kept
    // longer than EXAI_WS_RESULT_TTL_SECS); say so as the call's result.
    const bool restarted = last->instance != instance_;
    log_->info("mcp resume of an unknown stream restarted={}", restarted);
    stream->end(McpHttpCall::lost_stream_body(
        *last,
        restarted ? "exai error DAEMON_RESTARTED: the exai daemon restarted while this call was "
                    "running and its result is lost; call the tool again"
                  : "exai error RESULT_EXPIRED: this call's result is no longer kept "
                    "(EXAI_WS_RESULT_TTL_SECS); call the tool again"));
    return;
  }
  call->resume(stream, last->seq);
}

void
McpHttpService::handle_delete(HttpExchange& exchange)
{
  if (!admit(exchange)) {
    return;
  }
  auto& response = exchange.response();
  const std::string session_id = exchange.request().get(std::string(kSessionHeader), "");
  if (session_id.empty()) {
    send_rpc_error(response,
                   HTTPResponse::HTTP_BAD_REQUEST,
                   nullptr,
                   mcp::kInvalidRequest,
                   "Bad Request: Mcp-Session-Id header required");
    return;
  }
  std::vector<std::shared_ptr<McpHttpCall>> calls;
  {
    const std::lock_guard lock(mutex_);
    sweep(Clock::now());
    if (find_session(session_id, Clock::now()) == nullptr) {
      send_rpc_error(response, HTTPResponse::HTTP_NOT_FOUND, nullptr, -32001, "Session not found");
      return;
    }
    const auto it = sessions_.find(session_id);
    for (const auto& [id, call] : it->second.calls) {
      calls.push_back(call);
    }
    sessions_.erase(it);
    ids_.revoke(session_id);
    std::erase_if(streams_,
                  [&](const auto& entry) { return entry.second.session_id == session_id; });
  }
  ids_.persist(); // file I/O, outside the lock every /mcp request takes
  for (const auto& call : calls) {
    call->cancel_from_client();
  }
  log_->info(
      "mcp session closed id={} cancelled_calls={}", core::short_id(session_id), calls.size());
  send_empty(response, HTTPResponse::HTTP_NO_CONTENT);
}

void
McpHttpService::handle_post(HttpExchange& exchange)
{
  if (!admit(exchange)) {
    return;
  }
  auto& request = exchange.request();
  auto& response = exchange.response();
  const std::string accept = request.get("Accept", "");
  if (!accept.empty() && !accepts(request, "application/json") &&
      !accepts(request, "text/event-stream")) {
    send_rpc_error(response,
                   HTTPResponse::HTTP_NOT_ACCEPTABLE,
                   nullptr,
                   mcp::kInvalidRequest,
                   "Not Acceptable: Accept must include application/json and text/event-stream");
    return;
  }
  if (request.has(std::string(kVersionHeader)) &&
      !mcp::supported_protocol_version(request.get(std::string(kVersionHeader)))) {
    send_rpc_error(response,
                   HTTPResponse::HTTP_BAD_REQUEST,
                   nullptr,
                   mcp::kInvalidRequest,
                   "Bad Request: unsupported MCP-Protocol-Version " +
                       core::printable(request.get(std::string(kVersionHeader)), 40) +
                       " (supported: " + mcp::supported_protocol_versions_text() + ")");
    return;
  }
  // A JSON-RPC message is JSON; a form or text body is some other client
  // (or a page trying a CORS-simple request): refused before it is read.
  if (const std::string type = request.getContentType();
      type.substr(0, type.find(';')) != "application/json") {
    send_rpc_error(response,
                   HTTPResponse::HTTP_UNSUPPORTEDMEDIATYPE,
                   nullptr,
                   mcp::kInvalidRequest,
                   "Unsupported Media Type: Content-Type " + core::printable(type, 80) +
                       " (POST /mcp takes application/json)");
    return;
  }
  const auto body = read_body(request, config_.max_bytes);
  if (!body) {
    response.setKeepAlive(false); // the rest of the body is not read
    send_rpc_error(response,
                   HTTPResponse::HTTP_REQUEST_ENTITY_TOO_LARGE,
                   nullptr,
                   mcp::kInvalidRequest,
                   "request body larger than EXAI_WS_MAX_BYTES");
    return;
  }
  if (const auto batch = mcp::parse_batch(*body)) {
    const std::string session_id = request.get(std::string(kSessionHeader), "");
    std::string version;
    {
      const std::lock_guard lock(mutex_);
      if (Session* session =
              session_id.empty() ? nullptr : find_session(session_id, Clock::now())) {
        session->last_used = Clock::now();
        version = session->protocol_version;
      }
    }
    if (version.empty()) {
      send_rpc_error(response,
                     session_id.empty() ? HTTPResponse::HTTP_BAD_REQUEST
                                        : HTTPResponse::HTTP_NOT_FOUND,
                     nullptr,
                     session_id.empty() ? mcp::kInvalidRequest : -32001,
                     session_id.empty() ? "Bad Request: Mcp-Session-Id header required "
                                          "(initialize first; it cannot be batched)"
                                        : "Session not found");
      return;
    }
    if (!mcp::batches_allowed(version)) {
      send_rpc_error(response,
                     HTTPResponse::HTTP_BAD_REQUEST,
                     nullptr,
                     mcp::kInvalidRequest,
                     "Invalid Request: JSON-RPC batches are not supported in this session (" +
                         version + "; only 2024-11-05 and 2025-03-26 allow them)");
      return;
    }
    handle_batch(exchange, session_id, *batch);
    return;
  }
  const mcp::Message message = mcp::parse_message(*body);
  if (message.kind == mcp::Message::Kind::invalid) {
    send_rpc_error(response,
                   HTTPResponse::HTTP_BAD_REQUEST,
                   message.id,
                   message.error.code,
                   message.error.message);
    return;
  }
  mcp::Action action = mcp::route(message, EXAI_VERSION);

  if (message.kind == mcp::Message::Kind::request && message.method == "initialize") {
    if (const std::string live = request.get(std::string(kSessionHeader), ""); !live.empty()) {
      const std::lock_guard lock(mutex_);
      if (find_session(live, Clock::now()) != nullptr) {
        send_rpc_error(response,
                       HTTPResponse::HTTP_BAD_REQUEST,
                       message.id,
                       mcp::kInvalidRequest,
                       "Bad Request: this session is already initialized; initialize without "
                       "Mcp-Session-Id to open a new one");
        return;
      }
    }
    if (action.protocol_version.empty()) { // invalid params
      HttpRouter::send_json(response, HTTPResponse::HTTP_OK, action.response);
      return;
    }
    const std::string session_id = create_session(action.protocol_version);
    if (session_id.empty()) {
      send_rpc_error(response,
                     HTTPResponse::HTTP_SERVICE_UNAVAILABLE,
                     message.id,
                     mcp::kInternalError,
                     "too many MCP sessions with calls in progress");
      return;
    }
    log_->info("mcp session opened id={} protocol={}",
               core::short_id(session_id),
               action.protocol_version);
    response.set(std::string(kSessionHeader), session_id);
    HttpRouter::send_json(response, HTTPResponse::HTTP_OK, action.response);
    return;
  }

  const std::string session_id = request.get(std::string(kSessionHeader), "");
  if (session_id.empty()) {
    send_rpc_error(response,
                   HTTPResponse::HTTP_BAD_REQUEST,
                   message.id,
                   mcp::kInvalidRequest,
                   "Bad Request: Mcp-Session-Id header required (initialize first)");
    return;
  }
  {
    const std::lock_guard lock(mutex_);
    const auto now = Clock::now();
    sweep(now);
    Session* session = find_session(session_id, now);
    if (session == nullptr) {
      send_rpc_error(
          response, HTTPResponse::HTTP_NOT_FOUND, message.id, -32001, "Session not found");
      return;
    }
    // A version newer than the negotiated one claims what was not agreed;
    // an older supported one is only a client being conservative (the
    // conformance suite's multi-stream scenario sends 2025-03-26).
    if (request.has(std::string(kVersionHeader)) &&
        request.get(std::string(kVersionHeader)) > session->protocol_version) {
      send_rpc_error(response,
                     HTTPResponse::HTTP_BAD_REQUEST,
                     message.id,
                     mcp::kInvalidRequest,
                     "Bad Request: MCP-Protocol-Version " +
                         core::printable(request.get(std::string(kVersionHeader)), 40) +
                         " is newer than the version this session negotiated (" +
                         session->protocol_version + ")");
      return;
    }
    session->last_used = now;
  }
  if (action.type == mcp::Action::Type::cancel) {
    cancel_call(session_id, action.cancel_id);
  }

  switch (action.type) {
  case mcp::Action::Type::none:
  case mcp::Action::Type::cancel:
    send_empty(response, HTTPResponse::HTTP_ACCEPTED);
    return;
  case mcp::Action::Type::respond:
    remember_log_level(session_id, action);
    HttpRouter::send_json(response, HTTPResponse::HTTP_OK, action.response);
    return;
  case mcp::Action::Type::list_prompts:
  case mcp::Action::Type::get_prompt:
  case mcp::Action::Type::complete:
  case mcp::Action::Type::list_tools:
    HttpRouter::send_json(response, HTTPResponse::HTTP_OK, list_response(action));
    return;
  case mcp::Action::Type::call_tool:
    start_call(exchange,
               session_id,
               action.id,
               action.call.name,
               action.call.arguments,
               action.call.progress_token);
    return;
  }
}

void
McpHttpService::remember_log_level(const std::string& session_id, const mcp::Action& action)
{
  if (!action.log_level) {
    return;
  }
  const std::lock_guard lock(mutex_);
  if (Session* session = find_session(session_id, Clock::now())) {
    session->log_level = action.log_level;
  }
}

std::string
McpHttpService::list_response(const mcp::Action& action)
{
  const json tools = engine_.list_tools();
  switch (action.type) {
  case mcp::Action::Type::list_prompts:
    return mcp::result_response(action.id, mcp::prompts_list_result(tools));
  case mcp::Action::Type::get_prompt:
    return mcp::prompt_get_response(action.id, action.params, tools);
  case mcp::Action::Type::complete:
    return mcp::completion_response(action.id, action.params, tools);
  default:
    return mcp::result_response(action.id, mcp::tools_list_result(tools));
  }
}

void
McpHttpService::cancel_call(const std::string& session_id, const json& id)
{
  std::shared_ptr<McpHttpCall> call;
  {
    const std::lock_guard lock(mutex_);
    if (const auto session = sessions_.find(session_id); session != sessions_.end()) {
      if (const auto it = session->second.calls.find(id.dump());
          it != session->second.calls.end()) {
        call = it->second;
      }
    }
  }
  if (call) {
    call->cancel_from_client();
  }
}

std::shared_ptr<McpHttpCall>
McpHttpService::make_call(const std::string& session_id,
                          const json& id,
                          const std::string& tool,
                          const json& arguments,
                          const json& progress_token,
                          bool sse,
                          const mcp::EventId& events,
                          std::function<void(std::string)> deliver)
{
  std::optional<mcp::LogLevel> log_level;
  {
    const std::lock_guard lock(mutex_);
    if (const auto it = sessions_.find(session_id); it != sessions_.end()) {
      log_level = it->second.log_level;
    }
  }
  McpHttpCall::Setup setup;
  setup.engine = &engine_;
  setup.scheduler = &scheduler_;
  setup.log = log_;
  setup.session_id = "mcp:" + session_id;
  setup.request_id = id_prefix_ + std::to_string(++next_id_);
  setup.id = id;
  setup.progress_token = progress_token;
  setup.sse = sse;
  setup.tool = tool;
  setup.arguments = arguments;
  setup.log_level = log_level;
  setup.events = events;
  setup.resume_grace = options_.resume_grace;
  setup.handoff = &handoff_;
  setup.deliver = std::move(deliver);
  // The service may be gone (daemon stopping) while an engine thread still
  // delivers: it is held weakly.
  setup.on_finished =
      [weak = weak_from_this(), session_id, key = id.dump(), stream = events.stream_key()] {
        if (const auto service = weak.lock()) {
          service->end_call(session_id, key, stream);
        }
      };
  return std::make_shared<McpHttpCall>(std::move(setup));
}

bool
McpHttpService::register_call(const std::string& session_id,
                              const std::shared_ptr<McpHttpCall>& call,
                              bool sse,
                              const std::string& stream_key)
{
  const std::string key = call->id().dump();
  const std::lock_guard lock(mutex_);
  const auto it = sessions_.find(session_id);
  if (it == sessions_.end() || it->second.calls.count(key) != 0) {
    return false;
  }
  it->second.calls.emplace(key, call);
  if (sse) {
    streams_.insert_or_assign(stream_key, Stream{call, session_id, std::nullopt});
  }
  return true;
}

void
McpHttpService::submit(const std::shared_ptr<McpHttpCall>& call,
                       const std::string& tool,
                       const json& arguments)
{
  log_->debug("mcp call tool={} request_id={}", core::printable(tool, 64), call->request_id());
  engine_.submit(core::CallRequest{call->request_id(),
                                   std::string(core::strip_tool_suffix(tool)),
                                   arguments,
                                   call->session_id(),
                                   tokens_.required()
                                       ? "token#" + std::to_string(tokens_.generation())
                                       : std::string()},
                 call);
}

void
McpHttpService::start_call(HttpExchange& exchange,
                           const std::string& session_id,
                           const json& id,
                           const std::string& tool,
                           const json& arguments,
                           const json& progress_token)
{
  auto& response = exchange.response();
  const bool sse = accepts(exchange.request(), "text/event-stream");
  const mcp::EventId events{instance_, next_stream_++, 0, id};
  auto call = make_call(session_id, id, tool, arguments, progress_token, sse, events);
  if (!register_call(session_id, call, sse, events.stream_key())) {
    send_rpc_error(response,
                   HTTPResponse::HTTP_BAD_REQUEST,
                   id,
                   mcp::kInvalidRequest,
                   "session ended, or request id already in progress");
    return;
  }
  response.setStatusAndReason(HTTPResponse::HTTP_OK);
  response.setContentType(sse ? "text/event-stream" : "application/json");
  response.set("Cache-Control", "no-cache");
  response.set(std::string(kSessionHeader), session_id);
  // The head leaves now; the body follows from the event loop as the call
  // runs. No thread waits for it.
  call->attach(exchange.start_stream());
  submit(call, tool, arguments);
}

std::shared_ptr<McpHttpService>
register_mcp_routes(HttpRouter& router,
                    core::CallEngine& engine,
                    const core::DaemonConfig& config,
                    TokenStore& tokens,
                    McpHttpOptions options)
{
  auto service =
      std::make_shared<McpHttpService>(engine, config, tokens, options, core::log::get("net"));
  router.add("POST", "/mcp", [service](HttpExchange& exchange) { service->handle_post(exchange); });
  router.add(
      "DELETE", "/mcp", [service](HttpExchange& exchange) { service->handle_delete(exchange); });
  router.add("GET", "/mcp", [service](HttpExchange& exchange) { service->handle_get(exchange); });
  return service;
}

} // namespace exai::net
