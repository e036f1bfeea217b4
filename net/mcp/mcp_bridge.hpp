#pragma once

// McpBridge: the engine of `exai mcp`. Reads newline-delimited JSON-RPC from
// the MCP client, answers initialize/ping/unknown methods itself
// (core/mcp_protocol), and forwards tools/list and tools/call to the daemon
// over a DaemonClient, turning the daemon's frames back into MCP messages.
//
// Daemon restarts: calls wait (up to connect_timeout) while the daemon is
// unreachable; tools/list is answered from the cached list when there is one.
// A call the daemon refused with SHUTTING_DOWN (a graceful restart) waits for
// the next daemon the same way. A definite refusal (wrong token) fails every
// waiting call and list at once with a clear error. After a reconnect that resumed the daemon
// session, every unanswered call is sent again with its request_id, which the daemon answers by
// replay (finished) or by attaching to the running call; after a reconnect to a daemon that no
// longer knows the session (it restarted), calls it had accepted fail with an isError result saying
// so. The MCP session never ends because of the daemon.
//
// Threads: the caller's (run(): reads input), the DaemonClient's connection
// thread (frames), a ticker (progress heartbeats, waiting-call timeouts) and
// a writer (output). All MCP state is guarded by one mutex; output lines are
// queued under it, in order, and written whole by the writer alone, so an MCP
// client that stops reading for a while stalls neither the daemon connection
// (which keeps answering pings) nor the input.

#include "core/config/config.hpp"
#include "core/mcp/mcp_protocol.hpp"
#include "net/clients/daemon_client.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <istream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace exai::net {

struct BridgeOptions {
  // How long a call (or tools/list) waits for an unreachable daemon before it
  // fails with an isError result (a JSON-RPC error for tools/list).
  std::chrono::milliseconds connect_timeout{30000};
  // On input EOF: how long unanswered calls may still finish before they are
  // cancelled.
  std::chrono::milliseconds exit_grace{10000};
  // serverInfo.version.
  std::string server_version = "0";
  // Largest frame accepted from the daemon (its EXAI_WS_MAX_BYTES).
  std::size_t max_bytes = core::DaemonConfig{}.max_bytes;
  // Where the last tool list the daemon gave is kept (the state directory's
  // mcp-tools.json), so tools/list is answered while no daemon runs. Empty:
  // no cache.
  std::string tools_cache_path;
  // Output waiting for an MCP client that does not read: past this many
  // bytes, progress notifications are dropped (responses never are), so a
  // client that stops reading does not make the bridge keep a heartbeat per
  // running call every few seconds for as long as it stays away.
  std::size_t max_queued_notes_bytes = std::size_t{4} << 20U;
};

class McpBridge {
public:
  using Clock = std::chrono::steady_clock;
  // Writes one complete MCP message (no newline); the bridge serialises calls.
  using Writer = std::function<void(const std::string& message)>;

  McpBridge(DaemonAddress address,
            BridgeOptions options,
            Writer write,
            std::shared_ptr<spdlog::logger> log);
  McpBridge(const McpBridge&) = delete;
  McpBridge& operator=(const McpBridge&) = delete;
  ~McpBridge();

  // Connects to the daemon (in the background), handles every line of `in`
  // until EOF, then lets unanswered calls finish for exit_grace, cancels the
  // rest and stops. Returns the exit code (0).
  int run(std::istream& in);

  // Handles one input line (run() calls it; tests may too, after start()).
  void handle_line(const std::string& line);

  // Starts the daemon client and the ticker (run() calls it).
  void start();

  // Cancels what is left and stops every thread. Idempotent.
  void stop() noexcept;

  // Calls not yet answered.
  std::size_t pending_calls() const;

private:
  struct Call {
    core::mcp::CallTranslator translator;
    std::string tool;
    nlohmann::json arguments;
    bool accepted_by_daemon = false;          // sent on a connection that stayed up
    std::optional<Clock::time_point> waiting; // waiting for the daemon since
  };
  // tools/list, prompts/list or prompts/get: each needs the daemon's tools.
  struct ListRequest {
    nlohmann::json id;
    std::optional<Clock::time_point> waiting;
    core::mcp::Action::Type kind = core::mcp::Action::Type::list_tools;
    nlohmann::json params; // prompts/get
  };

  // A batch's requests by id (dumped) and the answers collected so far.
  struct PendingBatch {
    std::set<std::string> pending;
    std::vector<std::string> responses;
  };

  void dispatch(const core::mcp::Message& message);
  void handle_batch(core::mcp::Batch batch);
  // True when `message` answers a request of an open batch (then it is kept,
  // and the batch written once complete). mutex_ held.
  bool collect_for_batch(const std::string& message);
  void on_connected(bool resumed);
  void on_disconnected();
  void on_refused(const std::string& why);
  // A tool list from the daemon: cached, and announced with
  // notifications/tools/list_changed when it differs from the known one.
  void learn_tools(const nlohmann::json& tools);                          // mutex_ held
  void answer_list(const ListRequest& list, const nlohmann::json& tools); // mutex_ held
  std::string refused_text() const;                                       // mutex_ held
  void on_frame(const nlohmann::json& frame);
  void tick();
  // Queues `message` for the writer; a notification may be dropped (see
  // BridgeOptions::max_queued_notes_bytes). mutex_ held.
  enum class Kind { response, notification };
  void write(const std::string& message, Kind kind = Kind::response);
  // Sends call_tool now when connected (true), else marks the call waiting.
  bool send_call(const std::string& request_id, Call& call); // mutex_ held
  void start_call(const nlohmann::json& id, core::mcp::ToolCall call);
  void start_list(const core::mcp::Action& action);
  void cancel(const nlohmann::json& id);
  std::string unreachable_text() const;

  const BridgeOptions options_;
  const Writer write_;
  const std::shared_ptr<spdlog::logger> log_;
  const std::string id_prefix_;
  DaemonClient client_;

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::map<std::string, Call> calls_;            // daemon request_id -> call; guarded by mutex_
  std::map<std::string, std::string> by_mcp_;    // MCP id (dumped) -> request_id; guarded
  std::map<std::string, ListRequest> lists_;     // list_tools request_id -> MCP id; guarded
  std::uint64_t next_id_ = 0;                    // guarded by mutex_
  bool connected_ = false;                       // guarded by mutex_
  bool initialized_ = false;                     // guarded by mutex_: initialize answered
  std::string refused_;                          // guarded: why the daemon refused us ("" = not)
  nlohmann::json known_tools_;                   // guarded: last tool list (null = none yet)
  std::optional<core::mcp::LogLevel> log_level_; // guarded: logging/setLevel
  std::string protocol_version_;                 // guarded: negotiated at initialize
  std::vector<PendingBatch> batches_;            // guarded by mutex_
  bool stopping_ = false;                        // guarded by mutex_
  std::thread ticker_;

  // Output waiting for the writer (taken after mutex_ when both are held).
  std::mutex out_mutex_;
  std::condition_variable out_ready_;
  std::deque<std::string> out_;  // guarded by out_mutex_
  std::size_t out_bytes_ = 0;    // guarded by out_mutex_: bytes in out_
  bool warned_dropping_ = false; // guarded by out_mutex_: the one warning was logged
  bool out_closed_ = false;      // guarded by out_mutex_: write what is left, then end
  std::thread writer_;
  void write_out(); // the writer thread
};

} // namespace exai::net
