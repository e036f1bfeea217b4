#include "net/mcp/mcp_bridge.hpp"

#include "core/mcp/mcp_prompts.hpp"
#include "core/util/random_id.hpp"
#include "net/protocol/op_protocol.hpp"

#include <utility>
#include <vector>

namespace exai::net {

namespace {

using nlohmann::json;
namespace mcp = core::mcp;

constexpr auto kTick = std::chrono::milliseconds(250);
constexpr auto kCancelWait = std::chrono::seconds(2);

} // namespace

McpBridge::McpBridge(DaemonAddress address,
                     BridgeOptions options,
                     Writer write,
                     std::shared_ptr<spdlog::logger> log)
    : options_(std::move(options))
    , write_(std::move(write))
    , log_(std::move(log))
    , id_prefix_("mcp-" + core::random_hex(8) + "-")
    , client_(
          std::move(address),
          options_.max_bytes,
          DaemonClientCallbacks{[this](const std::string&, bool resumed) { on_connected(resumed); },
                                [this] { on_disconnected(); },
                                [this](const json& frame) { on_frame(frame); }},
          log_)
{
}

McpBridge::~McpBridge()
{
  stop();
}

void
McpBridge::start()
{
  client_.start();
  ticker_ = std::thread([this] {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
      changed_.wait_for(lock, kTick);
      lock.unlock();
      tick();
      lock.lock();
    }
  });
}

void
McpBridge::stop() noexcept
{
  {
    const std::lock_guard lock(mutex_);
    if (stopping_ && !ticker_.joinable()) {
      return;
    }
    stopping_ = true;
  }
  changed_.notify_all();
  if (ticker_.joinable()) {
    ticker_.join();
  }
  client_.stop();
}

std::size_t
McpBridge::pending_calls() const
{
  const std::lock_guard lock(mutex_);
  return calls_.size();
}

int
McpBridge::run(std::istream& in)
{
  start();
  std::string line;
  while (std::getline(in, line)) {
    handle_line(line);
  }
  log_->info("mcp input closed pending_calls={}", pending_calls());
  std::unique_lock lock(mutex_);
  if (!changed_.wait_for(lock, options_.exit_grace, [this] { return calls_.empty(); })) {
    // Cancel what is left so that the daemon releases its capacity now.
    for (auto it = calls_.begin(); it != calls_.end();) {
      if (it->second.accepted_by_daemon) {
        client_.send(protocol::cancel_tool_frame(it->first));
        ++it;
      } else {
        it = calls_.erase(it); // the daemon never had it: nothing to wait for
      }
    }
    changed_.wait_for(lock, kCancelWait, [this] { return calls_.empty(); });
    log_->info("mcp exiting cancelled_calls={}", calls_.size());
    calls_.clear();
    by_mcp_.clear();
  }
  lock.unlock();
  stop();
  return 0;
}

void
McpBridge::write(const std::string& message)
{
  try {
    write_(message);
  } catch (const std::exception& e) {
    log_->error("mcp write failed error=\"{}\"", e.what());
  }
}

void
McpBridge::handle_line(const std::string& line)
{
  if (line.find_first_not_of(" \t\r") == std::string::npos) {
    return;
  }
  const mcp::Message message = mcp::parse_message(line);
  mcp::Action action = mcp::route(message, options_.server_version);
  log_->debug("mcp message method={} kind={}", message.method, static_cast<int>(message.kind));
  switch (action.type) {
  case mcp::Action::Type::none:
    return;
  case mcp::Action::Type::respond: {
    const std::lock_guard lock(mutex_);
    if (!action.protocol_version.empty()) {
      if (initialized_) {
        write(mcp::error_response(
            action.id,
            mcp::RpcError{mcp::kInvalidRequest,
                          "Invalid Request: already initialized (one initialize per session)",
                          nullptr}));
        return;
      }
      initialized_ = true;
    }
    write(action.response);
    return;
  }
  case mcp::Action::Type::list_tools:
  case mcp::Action::Type::list_prompts:
  case mcp::Action::Type::get_prompt:
    start_list(action);
    return;
  case mcp::Action::Type::call_tool:
    start_call(action.id, std::move(action.call));
    return;
  case mcp::Action::Type::cancel:
    cancel(action.cancel_id);
    return;
  }
}

bool
McpBridge::send_call(const std::string& request_id, Call& call)
{
  if (connected_ &&
      client_.send(protocol::call_tool_frame(request_id, call.tool, call.arguments))) {
    call.accepted_by_daemon = true;
    call.waiting.reset();
    return true;
  }
  if (!call.waiting) {
    call.waiting = Clock::now();
  }
  return false;
}

void
McpBridge::start_call(const json& id, mcp::ToolCall tool_call)
{
  const std::lock_guard lock(mutex_);
  const std::string key = id.dump();
  if (by_mcp_.count(key) != 0) {
    write(mcp::error_response(
        id, mcp::RpcError{mcp::kInvalidRequest, "Invalid Request: id already in use", nullptr}));
    return;
  }
  const std::string request_id = id_prefix_ + std::to_string(++next_id_);
  Call call{mcp::CallTranslator(id, tool_call.progress_token, Clock::now()),
            std::move(tool_call.name),
            std::move(tool_call.arguments),
            false,
            std::nullopt};
  auto [it, inserted] = calls_.emplace(request_id, std::move(call));
  by_mcp_.emplace(key, request_id);
  const bool queued = !send_call(request_id, it->second);
  log_->debug("mcp call tool={} request_id={} queued={}", it->second.tool, request_id, queued);
}

void
McpBridge::start_list(const mcp::Action& action)
{
  const std::lock_guard lock(mutex_);
  const std::string request_id = id_prefix_ + "list-" + std::to_string(++next_id_);
  ListRequest list{action.id, std::nullopt, action.type, action.params};
  if (!(connected_ && client_.send(protocol::list_tools_frame(request_id)))) {
    list.waiting = Clock::now();
  }
  lists_.emplace(request_id, std::move(list));
}

void
McpBridge::cancel(const json& id)
{
  const std::lock_guard lock(mutex_);
  const auto found = by_mcp_.find(id.dump());
  if (found == by_mcp_.end()) {
    return; // already answered, or never known: nothing to do (MCP allows this race)
  }
  const std::string request_id = found->second;
  by_mcp_.erase(found);
  const auto call = calls_.find(request_id);
  if (call != calls_.end()) {
    if (call->second.accepted_by_daemon && connected_) {
      client_.send(protocol::cancel_tool_frame(request_id));
    }
    calls_.erase(call);
  }
  log_->debug("mcp call cancelled request_id={}", request_id);
  changed_.notify_all();
}

void
McpBridge::on_connected(bool resumed)
{
  const std::lock_guard lock(mutex_);
  connected_ = true;
  std::vector<std::string> lost;
  for (auto& [request_id, call] : calls_) {
    if (call.accepted_by_daemon && !resumed) {
      lost.push_back(request_id);
      continue;
    }
    // Never sent, or sent to this same daemon session: (re)send. The daemon
    // replays a finished result or attaches us to the running call.
    send_call(request_id, call);
  }
  for (const auto& request_id : lost) {
    auto it = calls_.find(request_id);
    write(mcp::tool_error_response(
        it->second.translator.id(),
        "exai error DAEMON_RESTARTED: the exai daemon restarted while this call was running and "
        "its result is lost; call the tool again"));
    by_mcp_.erase(it->second.translator.id().dump());
    calls_.erase(it);
  }
  for (auto& [request_id, list] : lists_) {
    if (client_.send(protocol::list_tools_frame(request_id))) {
      list.waiting.reset();
    }
  }
  if (!lost.empty()) {
    log_->warn("mcp calls lost to a daemon restart count={}", lost.size());
  }
  changed_.notify_all();
}

void
McpBridge::on_disconnected()
{
  const std::lock_guard lock(mutex_);
  connected_ = false;
  const auto now = Clock::now();
  for (auto& [request_id, call] : calls_) {
    call.waiting = now;
  }
  for (auto& [request_id, list] : lists_) {
    list.waiting = now;
  }
}

void
McpBridge::on_frame(const json& frame)
{
  const std::string op = frame.value("op", std::string());
  const auto rid = frame.find("request_id");
  if (rid == frame.end() || !rid->is_string()) {
    if (op == "error") {
      log_->warn("daemon error frame error={}", frame.value("error", json()).dump());
    }
    return;
  }
  const std::string& request_id = rid->get_ref<const std::string&>();
  const std::lock_guard lock(mutex_);
  if (const auto list = lists_.find(request_id); list != lists_.end()) {
    if (op == "list_tools_res") {
      // Prompts are made from the daemon's tool list too.
      const json tools = frame.value("tools", json::array());
      const auto& id = list->second.id;
      switch (list->second.kind) {
      case mcp::Action::Type::list_prompts:
        write(mcp::result_response(id, mcp::prompts_list_result(tools)));
        break;
      case mcp::Action::Type::get_prompt:
        write(mcp::prompt_get_response(id, list->second.params, tools));
        break;
      default:
        write(mcp::result_response(id, mcp::tools_list_result(tools)));
        break;
      }
    } else {
      write(mcp::error_response(list->second.id,
                                mcp::RpcError{mcp::kInternalError,
                                              "the exai daemon refused list_tools: " +
                                                  frame.value("error", json()).dump(),
                                              nullptr}));
    }
    lists_.erase(list);
    return;
  }
  const auto call = calls_.find(request_id);
  if (call == calls_.end()) {
    return; // cancelled, answered already (a replay duplicate), or not ours
  }
  if (op == "error") {
    // A frame the daemon could not take as a call: no call_tool_res follows.
    write(mcp::tool_error_response(call->second.translator.id(),
                                   "exai error: the daemon rejected the call: " +
                                       frame.value("error", json()).dump()));
  } else {
    for (const auto& message : call->second.translator.on_frame(frame, Clock::now())) {
      write(message);
    }
    if (!call->second.translator.done()) {
      return;
    }
  }
  by_mcp_.erase(call->second.translator.id().dump());
  calls_.erase(call);
  changed_.notify_all();
}

std::string
McpBridge::unreachable_text() const
{
  const auto& endpoint = client_.address();
  std::string text = "exai error DAEMON_UNREACHABLE: cannot reach the exai daemon at " +
                     endpoint.host + ":" + std::to_string(endpoint.port);
  if (const auto error = client_.last_error(); !error.empty()) {
    text += " (" + error + ")";
  }
  return text + "; start it with `exai serve` (or run `exai mcp --autostart`) and retry";
}

void
McpBridge::tick()
{
  const auto now = Clock::now();
  const std::lock_guard lock(mutex_);
  std::vector<std::string> expired;
  for (auto& [request_id, call] : calls_) {
    if (call.waiting && now - *call.waiting >= options_.connect_timeout) {
      expired.push_back(request_id);
    } else if (auto beat = call.translator.heartbeat(now)) {
      write(*beat);
    }
  }
  if (!expired.empty()) {
    const std::string text = unreachable_text();
    for (const auto& request_id : expired) {
      auto it = calls_.find(request_id);
      write(mcp::tool_error_response(it->second.translator.id(), text));
      by_mcp_.erase(it->second.translator.id().dump());
      calls_.erase(it);
    }
    changed_.notify_all();
  }
  for (auto it = lists_.begin(); it != lists_.end();) {
    if (it->second.waiting && now - *it->second.waiting >= options_.connect_timeout) {
      write(mcp::error_response(it->second.id,
                                mcp::RpcError{mcp::kInternalError, unreachable_text(), nullptr}));
      it = lists_.erase(it);
    } else {
      ++it;
    }
  }
}

} // namespace exai::net
