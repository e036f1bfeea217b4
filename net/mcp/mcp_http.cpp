#include "net/mcp/mcp_http.hpp"

#include "core/log.hpp"
#include "core/mcp/mcp_protocol.hpp"
#include "core/tools/tool_registry.hpp"
#include "core/util/random_id.hpp"

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

constexpr auto kWakeEvery = std::chrono::milliseconds(1000);
// An SSE comment this often lets a stream notice a client that went away.
constexpr auto kKeepAlive = std::chrono::seconds(10);
// Extra time beyond the engine's own deadlines before a call is given up.
constexpr auto kDeadlineSlack = std::chrono::seconds(30);
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

// Where the engine puts the frames of one /mcp call; the request thread takes
// them. send() never blocks.
class McpHttpService::Sink final : public core::CallSink {
public:
  void send(std::string frame) noexcept override
  {
    try {
      const std::lock_guard lock(mutex_);
      frames_.push_back(std::move(frame));
    } catch (...) {
      return; // out of memory: the call times out instead
    }
    ready_.notify_all();
  }

  // The next frame, or nullopt at `deadline` or when woken.
  std::optional<std::string> pop_until(Clock::time_point deadline)
  {
    std::unique_lock lock(mutex_);
    ready_.wait_until(lock, deadline, [this] { return !frames_.empty() || woken_; });
    woken_ = false;
    if (frames_.empty()) {
      return std::nullopt;
    }
    std::string frame = std::move(frames_.front());
    frames_.pop_front();
    return frame;
  }

  void wake()
  {
    {
      const std::lock_guard lock(mutex_);
      woken_ = true;
    }
    ready_.notify_all();
  }

private:
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::string> frames_; // guarded by mutex_
  bool woken_ = false;             // guarded by mutex_
};

struct McpHttpService::ActiveCall {
  std::string request_id;
  std::shared_ptr<Sink> sink;
  std::atomic<bool> cancelled{false};
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
    , streams_("mcp_http", std::max<std::size_t>(options.max_concurrent_calls, 1))
{
}

McpHttpService::~McpHttpService() = default;

bool
McpHttpService::admit(HTTPServerRequest& request, HTTPServerResponse& response)
{
  if (request.has("Origin") && !origin_allowed(request.get("Origin"), config_.allowed_origins)) {
    log_->warn("mcp request refused reason=\"foreign origin\" origin=\"{}\"",
               request.get("Origin"));
    HttpRouter::send_error(response,
                           HTTPResponse::HTTP_FORBIDDEN,
                           "FORBIDDEN",
                           "Origin not allowed (see EXAI_ALLOWED_ORIGINS)");
    return false;
  }
  if (tokens_.required()) {
    const std::string auth = request.get("Authorization", "");
    constexpr std::string_view kBearer = "Bearer ";
    const bool ok = auth.size() > kBearer.size() && auth.compare(0, kBearer.size(), kBearer) == 0 &&
                    tokens_.accepts(std::string_view(auth).substr(kBearer.size()));
    if (!ok) {
      log_->warn("mcp request refused reason=unauthorized");
      response.set("WWW-Authenticate", "Bearer");
      HttpRouter::send_error(response,
                             HTTPResponse::HTTP_UNAUTHORIZED,
                             "UNAUTHORIZED",
                             "missing or wrong Authorization: Bearer token (EXAI_WS_TOKEN)");
      return false;
    }
  }
  return true;
}

void
McpHttpService::sweep(Clock::time_point now)
{
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    if (it->second.calls.empty() && now - it->second.last_used > config_.session_timeout) {
      log_->debug("mcp session expired id={}", it->first.substr(0, 6));
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

std::string
McpHttpService::create_session(const std::string& protocol_version)
{
  const auto now = Clock::now();
  std::string id = core::random_hex(16);
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
  sessions_.emplace(id, Session{protocol_version, now, {}});
  return id;
}

void
McpHttpService::cancel_call(const std::string& session_id, const std::shared_ptr<ActiveCall>& call)
{
  call->cancelled = true;
  engine_.cancel("mcp:" + session_id, call->request_id);
  call->sink->wake();
}

void
McpHttpService::handle_get(HTTPServerRequest& request, HTTPServerResponse& response)
{
  if (!admit(request, response)) {
    return;
  }
  response.set("Allow", "POST, DELETE");
  HttpRouter::send_error(response,
                         HTTPResponse::HTTP_METHOD_NOT_ALLOWED,
                         "METHOD_NOT_ALLOWED",
                         "exai sends no server-initiated messages; POST to /mcp");
}

void
McpHttpService::handle_delete(HTTPServerRequest& request, HTTPServerResponse& response)
{
  if (!admit(request, response)) {
    return;
  }
  const std::string session_id = request.get(std::string(kSessionHeader), "");
  if (session_id.empty()) {
    send_rpc_error(response,
                   HTTPResponse::HTTP_BAD_REQUEST,
                   nullptr,
                   mcp::kInvalidRequest,
                   "Bad Request: Mcp-Session-Id header required");
    return;
  }
  std::vector<std::shared_ptr<ActiveCall>> calls;
  {
    const std::lock_guard lock(mutex_);
    sweep(Clock::now());
    const auto it = sessions_.find(session_id);
    if (it == sessions_.end()) {
      send_rpc_error(response, HTTPResponse::HTTP_NOT_FOUND, nullptr, -32001, "Session not found");
      return;
    }
    for (const auto& [id, call] : it->second.calls) {
      calls.push_back(call);
    }
    sessions_.erase(it);
  }
  for (const auto& call : calls) {
    cancel_call(session_id, call);
  }
  log_->info("mcp session closed id={} cancelled_calls={}", session_id.substr(0, 6), calls.size());
  send_empty(response, HTTPResponse::HTTP_NO_CONTENT);
}

void
McpHttpService::handle_post(HTTPServerRequest& request, HTTPServerResponse& response)
{
  if (!admit(request, response)) {
    return;
  }
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
                       request.get(std::string(kVersionHeader)) +
                       " (supported: 2025-03-26, 2025-06-18, 2025-11-25)");
    return;
  }
  const auto body = read_body(request, config_.max_bytes);
  if (!body) {
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
    log_->info(
        "mcp session opened id={} protocol={}", session_id.substr(0, 6), action.protocol_version);
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
  std::shared_ptr<ActiveCall> to_cancel;
  {
    const std::lock_guard lock(mutex_);
    const auto now = Clock::now();
    sweep(now);
    const auto it = sessions_.find(session_id);
    if (it == sessions_.end()) {
      send_rpc_error(
          response, HTTPResponse::HTTP_NOT_FOUND, message.id, -32001, "Session not found");
      return;
    }
    it->second.last_used = now;
    if (action.type == mcp::Action::Type::cancel) {
      if (const auto call = it->second.calls.find(action.cancel_id.dump());
          call != it->second.calls.end()) {
        to_cancel = call->second;
      }
    }
  }
  if (to_cancel) {
    cancel_call(session_id, to_cancel);
  }

  switch (action.type) {
  case mcp::Action::Type::none:
  case mcp::Action::Type::cancel:
    send_empty(response, HTTPResponse::HTTP_ACCEPTED);
    return;
  case mcp::Action::Type::respond:
    HttpRouter::send_json(response, HTTPResponse::HTTP_OK, action.response);
    return;
  case mcp::Action::Type::list_tools:
    HttpRouter::send_json(
        response,
        HTTPResponse::HTTP_OK,
        mcp::result_response(action.id, mcp::tools_list_result(engine_.list_tools())));
    return;
  case mcp::Action::Type::call_tool:
    run_call(request,
             response,
             session_id,
             action.id,
             action.call.name,
             action.call.arguments,
             action.call.progress_token);
    return;
  }
}

void
McpHttpService::run_call(HTTPServerRequest& request,
                         HTTPServerResponse& response,
                         const std::string& session_id,
                         const json& id,
                         const std::string& tool,
                         const json& arguments,
                         const json& progress_token)
{
  auto permit = streams_.try_acquire();
  if (!permit) {
    HttpRouter::send_json(
        response,
        HTTPResponse::HTTP_OK,
        mcp::tool_error_response(
            id,
            "exai error OVER_CAPACITY: too many /mcp tool calls in progress (limit " +
                std::to_string(options_.max_concurrent_calls) +
                "); retry shortly, or use `exai mcp` (stdio) for more parallel calls"));
    return;
  }
  auto call = std::make_shared<ActiveCall>();
  call->request_id = id_prefix_ + std::to_string(++next_id_);
  call->sink = std::make_shared<Sink>();
  const std::string key = id.dump();
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
  const bool sse = accepts(request, "text/event-stream");
  log_->debug("mcp call tool={} request_id={} sse={}", tool, call->request_id, sse);
  engine_.submit(core::CallRequest{call->request_id,
                                   std::string(core::strip_tool_suffix(tool)),
                                   arguments,
                                   "mcp:" + session_id},
                 call->sink);

  mcp::CallTranslator translator(id, progress_token, Clock::now());
  const auto deadline =
      Clock::now() + config_.call_timeout + config_.acquire_timeout + kDeadlineSlack;
  std::ostream* out = nullptr;
  if (sse) {
    response.setStatusAndReason(HTTPResponse::HTTP_OK);
    response.setContentType("text/event-stream");
    response.set("Cache-Control", "no-cache");
    response.set(std::string(kSessionHeader), session_id);
    response.setChunkedTransferEncoding(true);
    out = &response.send();
  }
  auto last_write = Clock::now();
  bool client_gone = false;
  const auto emit = [&](const std::string& message) {
    if (out == nullptr || client_gone) {
      return;
    }
    try {
      *out << "event: message\ndata: " << message << "\n\n";
      out->flush();
      client_gone = !out->good();
    } catch (const Poco::Exception&) {
      client_gone = true;
    } catch (const std::ios_base::failure&) {
      client_gone = true;
    }
    last_write = Clock::now();
  };
  std::string final_response;
  while (final_response.empty() && !call->cancelled && !client_gone) {
    const auto now = Clock::now();
    if (now >= deadline) {
      engine_.cancel("mcp:" + session_id, call->request_id);
      final_response = mcp::tool_error_response(
          id, "exai error TIMEOUT: no result from the exai call engine in time");
      break;
    }
    const auto frame = call->sink->pop_until(std::min(now + kWakeEvery, deadline));
    if (frame) {
      const json parsed = json::parse(*frame, nullptr, false);
      for (auto& message : translator.on_frame(parsed, Clock::now())) {
        if (translator.done()) {
          final_response = std::move(message);
        } else {
          emit(message);
        }
      }
    }
    if (auto beat = translator.heartbeat(Clock::now())) {
      emit(*beat);
    } else if (out != nullptr && Clock::now() - last_write >= kKeepAlive) {
      try {
        *out << ": keepalive\n\n";
        out->flush();
        client_gone = !out->good();
      } catch (const Poco::Exception&) {
        client_gone = true;
      }
      last_write = Clock::now();
    }
  }
  if (client_gone && !translator.done()) {
    log_->info("mcp client went away; cancelling request_id={}", call->request_id);
    engine_.cancel("mcp:" + session_id, call->request_id);
  }
  {
    const std::lock_guard lock(mutex_);
    if (const auto it = sessions_.find(session_id); it != sessions_.end()) {
      it->second.calls.erase(key);
      it->second.last_used = Clock::now();
    }
  }
  if (call->cancelled) {
    // notifications/cancelled: MCP sends no response for that request.
    if (out == nullptr) {
      send_empty(response, HTTPResponse::HTTP_ACCEPTED);
    }
    return;
  }
  if (out != nullptr) {
    emit(final_response);
    return;
  }
  HttpRouter::send_json(response, HTTPResponse::HTTP_OK, final_response);
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
  router.add("POST", "/mcp", [service](HTTPServerRequest& request, HTTPServerResponse& response) {
    service->handle_post(request, response);
  });
  router.add("DELETE", "/mcp", [service](HTTPServerRequest& request, HTTPServerResponse& response) {
    service->handle_delete(request, response);
  });
  router.add("GET", "/mcp", [service](HTTPServerRequest& request, HTTPServerResponse& response) {
    service->handle_get(request, response);
  });
  return service;
}

} // namespace exai::net
