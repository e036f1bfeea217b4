#include "net/mcp/mcp_http.hpp"

#include "core/log.hpp"
#include "core/mcp/mcp_prompts.hpp"
#include "core/mcp/mcp_protocol.hpp"
#include "core/tools/tool_registry.hpp"
#include "core/util/random_id.hpp"
#include "core/util/text.hpp"
#include "net/http/response_stream.hpp"
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

// An SSE comment this often lets a stream notice a client that went away.
constexpr auto kKeepAlive = std::chrono::seconds(10);
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

// One tools/call on /mcp: renders the engine's events as JSON-RPC and writes
// them to the response stream the connection's event loop sends. Held by its
// session until its result is out (the engine holds it only weakly).
class McpHttpService::Call final : public core::CallSink,
                                   public ResponseStream::Listener,
                                   public std::enable_shared_from_this<Call> {
public:
  Call(std::weak_ptr<McpHttpService> service,
       core::CallEngine& engine,
       std::shared_ptr<spdlog::logger> log,
       std::string session_id,
       std::string key,
       std::string request_id,
       json id,
       json progress_token,
       bool sse,
       std::string tool,
       std::optional<mcp::LogLevel> log_level)
      : service_(std::move(service))
      , engine_(engine)
      , log_(std::move(log))
      , session_id_(std::move(session_id))
      , key_(std::move(key))
      , request_id_(std::move(request_id))
      , sse_(sse)
      , tool_(std::move(tool))
      , log_level_(log_level)
      , translator_(std::move(id), std::move(progress_token), Clock::now())
  {
  }

  void attach(std::shared_ptr<ResponseStream> stream)
  {
    const std::lock_guard lock(mutex_);
    stream_ = std::move(stream);
  }
  const std::string& request_id() const noexcept { return request_id_; }

  void on_progress(std::string_view /*request_id*/,
                   std::string_view /*tool*/,
                   std::string_view note) noexcept override
  {
    const std::lock_guard lock(mutex_);
    if (!done_ && sse_) {
      if (auto message = translator_.on_progress(note, Clock::now())) {
        write_event(*message);
      }
    }
  }

  void on_ack(std::string_view /*request_id*/,
              std::string_view /*tool*/,
              std::chrono::milliseconds /*timeout*/) noexcept override
  {
    const std::lock_guard lock(mutex_);
    if (!done_ && sse_) {
      if (auto message = translator_.on_ack(Clock::now())) {
        write_event(*message);
      }
    }
  }

  bool on_result(std::string_view /*request_id*/, const core::ToolResult& result) noexcept override
  {
    bool written = false;
    {
      const std::lock_guard lock(mutex_);
      if (done_) {
        return false;
      }
      done_ = true;
      try {
        if (cancelled_) {
          // notifications/cancelled: MCP sends no response for that request.
          stream_->end();
        } else if (sse_) {
          log_outcome(result);
          written = write_event(translator_.on_result(result));
          stream_->end();
        } else {
          std::string body = translator_.on_result(result);
          written = stream_->write(std::move(body));
          stream_->end();
        }
      } catch (const std::exception&) {
        stream_->end();
      }
    }
    // The service may be gone (daemon stopping) while an engine thread
    // still delivers: it is held weakly.
    if (const auto service = service_.lock()) {
      service->end_call(session_id_, key_);
    }
    return written;
  }

  // The client (DELETE, notifications/cancelled) ended the call.
  void cancel_from_client()
  {
    {
      const std::lock_guard lock(mutex_);
      if (done_) {
        return;
      }
      cancelled_ = true;
    }
    engine_.cancel("mcp:" + session_id_, request_id_);
  }

  void on_stream_closed() noexcept override
  {
    {
      const std::lock_guard lock(mutex_);
      if (done_) {
        return;
      }
      cancelled_ = true;
    }
    log_->info("mcp client went away; cancelling request_id={}", request_id_);
    try {
      engine_.cancel("mcp:" + session_id_, request_id_);
    } catch (const std::exception&) {
      // The call ends at its deadline instead.
    }
  }

  void on_stream_tick(SteadyClock::time_point now) noexcept override
  {
    const std::lock_guard lock(mutex_);
    if (done_ || !sse_) {
      return;
    }
    try {
      if (auto beat = translator_.heartbeat(now)) {
        write_event(*beat);
      } else if (now - last_write_ >= kKeepAlive) {
        // An SSE comment lets the stream notice a client that went away.
        stream_->write(": keepalive\n\n");
        last_write_ = now;
      }
    } catch (const std::exception&) {
      // A skipped heartbeat loses nothing.
    }
  }

private:
  // notifications/message for the call's end, at or above the session's
  // logging/setLevel (none when the client never set one).
  void log_outcome(const core::ToolResult& result) // mutex_ held
  {
    if (!log_level_) {
      return;
    }
    const auto* failure = std::get_if<core::ToolFailure>(&result);
    const auto level = failure != nullptr ? mcp::LogLevel::warning : mcp::LogLevel::info;
    if (level < *log_level_) {
      return;
    }
    json data = {{"request_id", request_id_},
                 {"tool", core::printable(tool_, 64)},
                 {"outcome", failure != nullptr ? "error" : "ok"}};
    if (failure != nullptr) {
      data["code"] = std::string(core::protocol_code(failure->code));
      data["message"] = failure->message;
    }
    write_event(mcp::log_notification(level, "exai.call", data));
  }

  bool write_event(const std::string& message) // mutex_ held
  {
    last_write_ = Clock::now();
    return stream_->write("event: message\ndata: " + message + "\n\n");
  }

  const std::weak_ptr<McpHttpService> service_;
  core::CallEngine& engine_;
  const std::shared_ptr<spdlog::logger> log_;
  const std::string session_id_;
  const std::string key_;
  const std::string request_id_;
  const bool sse_;
  const std::string tool_;
  const std::optional<mcp::LogLevel> log_level_;
  std::mutex mutex_;
  core::mcp::CallTranslator translator_;        // guarded by mutex_
  std::shared_ptr<ResponseStream> stream_;      // guarded by mutex_
  Clock::time_point last_write_ = Clock::now(); // guarded by mutex_
  bool done_ = false;                           // guarded by mutex_
  bool cancelled_ = false;                      // guarded by mutex_
};

McpHttpService::McpHttpService(core::CallEngine& engine,
                               const core::DaemonConfig& config,
                               TokenStore& tokens,
                               McpHttpOptions options,
                               std::shared_ptr<spdlog::logger> log)
    : engine_(engine)
    , config_(config)
    , tokens_(tokens)
    , options_(options)
    , log_(std::move(log))
    , id_prefix_("mcph-" + core::random_hex(8) + "-")
    , ids_(config.state_dir)
{
}

McpHttpService::~McpHttpService() = default;

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
  if (sessions_.size() >= options_.max_sessions) {
    auto oldest = sessions_.end();
    for (auto it = sessions_.begin(); it != sessions_.end(); ++it) {
      if (it->second.calls.empty() &&
          (oldest == sessions_.end() || it->second.last_used < oldest->second.last_used)) {
        oldest = it;
      }
    }
    if (oldest == sessions_.end()) {
      return {};
    }
    sessions_.erase(oldest);
  }
  sessions_.emplace(id, Session{protocol_version, now, {}, {}});
  return id;
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
  log_->info("mcp session re-adopted id={} protocol={}", core::short_id(id), *version);
  return &sessions_.emplace(id, Session{*version, now, {}, {}}).first->second;
}

void
McpHttpService::end_call(const std::string& session_id, const std::string& key)
{
  std::shared_ptr<Call> call; // released outside the lock
  const std::lock_guard lock(mutex_);
  if (const auto it = sessions_.find(session_id); it != sessions_.end()) {
    if (const auto c = it->second.calls.find(key); c != it->second.calls.end()) {
      call = std::move(c->second);
      it->second.calls.erase(c);
    }
    it->second.last_used = Clock::now();
  }
}

void
McpHttpService::handle_get(HttpExchange& exchange)
{
  if (!admit(exchange)) {
    return;
  }
  exchange.response().set("Allow", "POST, DELETE");
  send_rpc_error(exchange.response(),
                 HTTPResponse::HTTP_METHOD_NOT_ALLOWED,
                 nullptr,
                 mcp::kInvalidRequest,
                 "Method Not Allowed: exai sends no server-initiated messages; POST to /mcp");
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
  std::vector<std::shared_ptr<Call>> calls;
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
  }
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
  std::shared_ptr<Call> to_cancel;
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
    if (request.has(std::string(kVersionHeader)) &&
        request.get(std::string(kVersionHeader)) != session->protocol_version) {
      send_rpc_error(response,
                     HTTPResponse::HTTP_BAD_REQUEST,
                     message.id,
                     mcp::kInvalidRequest,
                     "Bad Request: MCP-Protocol-Version " +
                         core::printable(request.get(std::string(kVersionHeader)), 40) +
                         " is not the version this session negotiated (" +
                         session->protocol_version + ")");
      return;
    }
    session->last_used = now;
    if (action.type == mcp::Action::Type::cancel) {
      if (const auto call = session->calls.find(action.cancel_id.dump());
          call != session->calls.end()) {
        to_cancel = call->second;
      }
    }
  }
  if (to_cancel) {
    to_cancel->cancel_from_client();
  }

  switch (action.type) {
  case mcp::Action::Type::none:
  case mcp::Action::Type::cancel:
    send_empty(response, HTTPResponse::HTTP_ACCEPTED);
    return;
  case mcp::Action::Type::respond:
    if (action.log_level) {
      const std::lock_guard lock(mutex_);
      if (Session* session = find_session(session_id, Clock::now())) {
        session->log_level = action.log_level;
      }
    }
    HttpRouter::send_json(response, HTTPResponse::HTTP_OK, action.response);
    return;
  case mcp::Action::Type::list_prompts:
    HttpRouter::send_json(
        response,
        HTTPResponse::HTTP_OK,
        mcp::result_response(action.id, mcp::prompts_list_result(engine_.list_tools())));
    return;
  case mcp::Action::Type::get_prompt:
    HttpRouter::send_json(response,
                          HTTPResponse::HTTP_OK,
                          mcp::prompt_get_response(action.id, action.params, engine_.list_tools()));
    return;
  case mcp::Action::Type::list_tools:
    HttpRouter::send_json(
        response,
        HTTPResponse::HTTP_OK,
        mcp::result_response(action.id, mcp::tools_list_result(engine_.list_tools())));
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
McpHttpService::start_call(HttpExchange& exchange,
                           const std::string& session_id,
                           const json& id,
                           const std::string& tool,
                           const json& arguments,
                           const json& progress_token)
{
  auto& response = exchange.response();
  const bool sse = accepts(exchange.request(), "text/event-stream");
  const std::string key = id.dump();
  std::optional<mcp::LogLevel> log_level;
  {
    const std::lock_guard lock(mutex_);
    if (const auto it = sessions_.find(session_id); it != sessions_.end()) {
      log_level = it->second.log_level;
    }
  }
  auto call = std::make_shared<Call>(weak_from_this(),
                                     engine_,
                                     log_,
                                     session_id,
                                     key,
                                     id_prefix_ + std::to_string(++next_id_),
                                     id,
                                     progress_token,
                                     sse,
                                     tool,
                                     log_level);
  {
    const std::lock_guard lock(mutex_);
    const auto it = sessions_.find(session_id);
    if (it == sessions_.end() || it->second.calls.count(key) != 0) {
      send_rpc_error(response,
                     HTTPResponse::HTTP_BAD_REQUEST,
                     id,
                     mcp::kInvalidRequest,
                     it == sessions_.end() ? "session ended" : "request id already in progress");
      return;
    }
    it->second.calls.emplace(key, call);
  }
  response.setStatusAndReason(HTTPResponse::HTTP_OK);
  response.setContentType(sse ? "text/event-stream" : "application/json");
  response.set("Cache-Control", "no-cache");
  response.set(std::string(kSessionHeader), session_id);
  // The head leaves now; the body follows from the event loop as the call
  // runs. No thread waits for it.
  auto stream = exchange.start_stream();
  call->attach(stream);
  stream->set_listener(call);
  log_->debug(
      "mcp call tool={} request_id={} sse={}", core::printable(tool, 64), call->request_id(), sse);
  engine_.submit(core::CallRequest{call->request_id(),
                                   std::string(core::strip_tool_suffix(tool)),
                                   arguments,
                                   "mcp:" + session_id,
                                   tokens_.required()
                                       ? "token#" + std::to_string(tokens_.generation())
                                       : std::string()},
                 call);
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
