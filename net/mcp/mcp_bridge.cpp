#include "net/mcp/mcp_bridge.hpp"

#include "core/health/state_dir.hpp"
#include "core/mcp/mcp_prompts.hpp"
#include "core/util/random_id.hpp"
#include "net/protocol/op_protocol.hpp"

#include <filesystem>
#include <fstream>
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
                                [this](const json& frame) { on_frame(frame); },
                                [this](const std::string& why) { on_refused(why); }},
          log_)
{
  if (!options_.tools_cache_path.empty()) {
    std::ifstream in(options_.tools_cache_path);
    auto cached = json::parse(in, nullptr, false);
    if (cached.is_array()) {
      known_tools_ = std::move(cached);
    }
  }
}

McpBridge::~McpBridge()
{
  stop();
}

void
McpBridge::start()
{
  writer_ = std::thread([this] { write_out(); });
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
  {
    const std::lock_guard lock(out_mutex_);
    out_closed_ = true;
  }
  out_ready_.notify_all();
  if (writer_.joinable()) {
    writer_.join(); // after what was queued is written
  }
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
McpBridge::write(const std::string& message, Kind kind)
{
  if (!batches_.empty() && collect_for_batch(message)) {
    return;
  }
  {
    const std::lock_guard lock(out_mutex_);
    if (kind == Kind::notification && out_bytes_ >= options_.max_queued_notes_bytes) {
      if (!std::exchange(warned_dropping_, true)) {
        log_->warn("mcp client is not reading its output ({} bytes waiting): progress "
                   "notifications are dropped until it catches up",
                   out_bytes_);
      }
      return;
    }
    out_bytes_ += message.size();
    out_.push_back(message);
  }
  out_ready_.notify_one();
}

void
McpBridge::write_out()
{
  std::unique_lock lock(out_mutex_);
  for (;;) {
    out_ready_.wait(lock, [this] { return out_closed_ || !out_.empty(); });
    if (out_.empty()) {
      return; // closed, and everything written
    }
    std::string message = std::move(out_.front());
    out_.pop_front();
    out_bytes_ -= message.size();
    lock.unlock();
    try {
      write_(message);
    } catch (const std::exception& e) {
      log_->error("mcp write failed error=\"{}\"", e.what());
    }
    lock.lock();
  }
}

bool
McpBridge::collect_for_batch(const std::string& message)
{
  const auto parsed = json::parse(message, nullptr, false);
  if (!parsed.is_object() || parsed.contains("method") || !parsed.contains("id")) {
    return false; // notifications go out at once
  }
  const std::string key = parsed["id"].dump();
  for (auto it = batches_.begin(); it != batches_.end(); ++it) {
    if (it->pending.erase(key) == 0) {
      continue;
    }
    it->responses.push_back(message);
    if (it->pending.empty()) {
      const std::string all = mcp::batch_response(it->responses);
      batches_.erase(it);
      write(all);
    }
    return true;
  }
  return false;
}

void
McpBridge::handle_batch(mcp::Batch batch)
{
  {
    const std::lock_guard lock(mutex_);
    if (batch.refused || !mcp::batches_allowed(protocol_version_)) {
      const mcp::Message& refused = batch.refused ? *batch.refused : mcp::Message{};
      write(mcp::error_response(
          nullptr,
          batch.refused ? refused.error
                        : mcp::RpcError{mcp::kInvalidRequest,
                                        "Invalid Request: JSON-RPC batches are not supported in "
                                        "this session (only 2024-11-05 and 2025-03-26 allow them)",
                                        nullptr}));
      return;
    }
    // Every answer of the batch leaves as one array once the last is in.
    PendingBatch pending;
    for (const auto& message : batch.messages) {
      if (message.kind == mcp::Message::Kind::request) {
        pending.pending.insert(message.id.dump());
      } else if (message.kind == mcp::Message::Kind::invalid) {
        const auto action = mcp::route(message, options_.server_version);
        if (!action.response.empty()) {
          pending.responses.push_back(action.response);
        }
      }
    }
    if (pending.pending.empty()) {
      if (!pending.responses.empty()) {
        write(mcp::batch_response(pending.responses));
      }
    } else {
      batches_.push_back(std::move(pending));
    }
  }
  for (const auto& message : batch.messages) {
    if (message.kind != mcp::Message::Kind::invalid) {
      dispatch(message);
    }
  }
}

void
McpBridge::handle_line(const std::string& line)
{
  if (line.find_first_not_of(" \t\r") == std::string::npos) {
    return;
  }
  if (auto batch = mcp::parse_batch(line)) {
    handle_batch(std::move(*batch));
    return;
  }
  dispatch(mcp::parse_message(line));
}

void
McpBridge::dispatch(const mcp::Message& message)
{
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
      protocol_version_ = action.protocol_version;
    }
    if (action.log_level) {
      log_level_ = action.log_level;
    }
    write(action.response);
    return;
  }
  case mcp::Action::Type::list_tools:
  case mcp::Action::Type::list_prompts:
  case mcp::Action::Type::get_prompt:
  case mcp::Action::Type::complete:
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
  if (!connected_ && !refused_.empty()) {
    write(mcp::tool_error_response(id, refused_text()));
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
  if (connected_ && client_.send(protocol::list_tools_frame(request_id))) {
    lists_.emplace(request_id, std::move(list));
    return;
  }
  // No daemon now: the last list it gave, rather than a client stuck at
  // start-up; notifications/tools/list_changed follows if it differs.
  if (!known_tools_.is_null()) {
    answer_list(list, known_tools_);
    return;
  }
  if (!refused_.empty()) {
    write(
        mcp::error_response(list.id, mcp::RpcError{mcp::kInternalError, refused_text(), nullptr}));
    return;
  }
  list.waiting = Clock::now();
  lists_.emplace(request_id, std::move(list));
}

void
McpBridge::answer_list(const ListRequest& list, const json& tools)
{
  switch (list.kind) {
  case mcp::Action::Type::list_prompts:
    write(mcp::result_response(list.id, mcp::prompts_list_result(tools)));
    break;
  case mcp::Action::Type::get_prompt:
    write(mcp::prompt_get_response(list.id, list.params, tools));
    break;
  case mcp::Action::Type::complete:
    write(mcp::completion_response(list.id, list.params, tools));
    break;
  case mcp::Action::Type::list_tools:
    write(mcp::result_response(list.id, mcp::tools_list_result(tools)));
    break;
  default:
    break; // the bridge's own refresh after a connect
  }
}

void
McpBridge::learn_tools(const json& tools)
{
  if (tools == known_tools_) {
    return;
  }
  const bool announce = !known_tools_.is_null() && initialized_;
  known_tools_ = tools;
  if (!options_.tools_cache_path.empty()) {
    try {
      // The state directory may not exist yet when no daemon ever ran here.
      const auto dir = std::filesystem::path(options_.tools_cache_path).parent_path();
      if (!dir.empty() && std::filesystem::create_directories(dir)) {
        std::filesystem::permissions(dir, std::filesystem::perms::owner_all);
      }
      core::write_file_atomically(options_.tools_cache_path, tools.dump());
    } catch (const std::exception& e) {
      log_->warn(
          "mcp tool cache not written path={} error=\"{}\"", options_.tools_cache_path, e.what());
    }
  }
  if (announce) {
    write(R"({"jsonrpc":"2.0","method":"notifications/tools/list_changed"})");
  }
}

std::string
McpBridge::refused_text() const
{
  const auto& endpoint = client_.address();
  return "exai error UNAUTHORIZED: the exai daemon at " + endpoint.host + ":" +
         std::to_string(endpoint.port) + " refused this client (" + refused_ +
         "); give `exai mcp` the daemon's token (EXAI_WS_TOKEN, or --token)";
}

void
McpBridge::on_refused(const std::string& why)
{
  const std::lock_guard lock(mutex_);
  const bool first = refused_.empty();
  refused_ = why;
  if (first) {
    log_->error("daemon refused this client error=\"{}\"", why);
  }
  // Fail what waits now: retrying cannot help until the token changes.
  const std::string text = refused_text();
  for (auto it = calls_.begin(); it != calls_.end();) {
    if (it->second.waiting) {
      write(mcp::tool_error_response(it->second.translator.id(), text));
      by_mcp_.erase(it->second.translator.id().dump());
      it = calls_.erase(it);
    } else {
      ++it;
    }
  }
  for (const auto& [request_id, list] : lists_) {
    if (list.kind != mcp::Action::Type::none) {
      write(mcp::error_response(list.id, mcp::RpcError{mcp::kInternalError, text, nullptr}));
    }
  }
  lists_.clear();
  changed_.notify_all();
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
  refused_.clear();
  {
    // Learn the daemon's tools now, so a changed list is announced.
    const std::string request_id = id_prefix_ + "refresh-" + std::to_string(++next_id_);
    if (client_.send(protocol::list_tools_frame(request_id))) {
      lists_.emplace(request_id,
                     ListRequest{nullptr, std::nullopt, mcp::Action::Type::none, nullptr});
    }
  }
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
      const json tools = frame.value("tools", json::array());
      answer_list(list->second, tools);
      learn_tools(tools);
    } else if (list->second.kind != mcp::Action::Type::none) {
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
  if (op == "call_tool_res" && frame.contains("error") && frame["error"].is_object() &&
      frame["error"].value("code", std::string()) == "SHUTTING_DOWN") {
    // A graceful restart: the call never ran. It waits for the next daemon
    // (up to connect_timeout) and is sent again on the next connection.
    call->second.accepted_by_daemon = false;
    call->second.waiting = Clock::now();
    log_->info("mcp call held for the next daemon request_id={}", request_id);
    return;
  }
  if (op == "error") {
    // A frame the daemon could not take as a call: no call_tool_res follows.
    write(mcp::tool_error_response(call->second.translator.id(),
                                   "exai error: the daemon rejected the call: " +
                                       frame.value("error", json()).dump()));
  } else {
    if (op == "call_tool_res" && log_level_) {
      const json error = frame.value("error", json());
      const bool failed = error.is_object();
      const auto note = mcp::call_outcome_notification(
          *log_level_,
          request_id,
          call->second.tool,
          failed ? error.value("code", std::string("INTERNAL_ERROR")) : std::string(),
          failed ? error.value("message", std::string()) : std::string());
      if (note) {
        write(*note, Kind::notification);
      }
    }
    // Progress notifications, then (for call_tool_res) the response.
    const auto messages = call->second.translator.on_frame(frame, Clock::now());
    for (std::size_t i = 0; i < messages.size(); ++i) {
      const bool response = call->second.translator.done() && i + 1 == messages.size();
      write(messages[i], response ? Kind::response : Kind::notification);
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
      write(*beat, Kind::notification);
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
      if (it->second.kind != mcp::Action::Type::none) {
        write(mcp::error_response(it->second.id,
                                  mcp::RpcError{mcp::kInternalError, unreachable_text(), nullptr}));
      }
      it = lists_.erase(it);
    } else {
      ++it;
    }
  }
}

} // namespace exai::net
