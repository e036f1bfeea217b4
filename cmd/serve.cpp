// exai serve: run the daemon in the foreground until SIGINT/SIGTERM.

#include "cmd/command.hpp"
#include "core/config.hpp"
#include "core/log.hpp"
#include "net/protocol.hpp"
#include "net/ws_server.hpp"

#include <nlohmann/json.hpp>

#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstring>
#include <ctime>
#include <memory>
#include <string>

namespace exai::cmd {

namespace {

struct ServeOptions {
  std::string host; // empty = from the environment / default
  int port = -1;    // -1 = from the environment / default
};

// TODO(lead): replace with the real call engine (core/engine) and call its
// shutdown(grace) at the marked site in run_serve(). Until then every call
// is answered with exactly one call_tool_res carrying INTERNAL_ERROR, so
// clients never hang.
class UnwiredEngine final : public core::CallEngine {
public:
  void submit(core::CallRequest request, const std::shared_ptr<core::CallSink>& sink) override
  {
    sink->send(net::protocol::call_error_frame(
        request.request_id, core::Errc::internal_error, "the call engine is not available yet"));
  }
  bool cancel(std::string_view /*session_id*/, std::string_view /*request_id*/) override
  {
    return false;
  }
  void attach_session(const std::string& /*session_id*/,
                      const std::shared_ptr<core::CallSink>& /*sink*/) override
  {
  }
  nlohmann::json list_tools() const override { return nlohmann::json::array(); }
};

// SIGINT/SIGTERM are blocked in every thread (threads inherit the mask) and
// taken synchronously by sigwait in the main thread.
sigset_t
termination_signals()
{
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

// Many idle WebSockets need many descriptors: raise the soft limit to the hard one.
void
raise_descriptor_limit(spdlog::logger& log)
{
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) {
      log.warn("cannot raise the descriptor limit error=\"{}\"", std::strerror(errno));
    }
  }
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    log.debug("descriptor limit nofile={}", static_cast<unsigned long long>(limit.rlim_cur));
  }
}

int
run_serve(const ServeOptions& options, const GlobalOptions& global)
{
  const auto log = core::log::get("cmd");
  core::Settings::Map flags;
  if (!options.host.empty()) {
    flags["EXAI_WS_HOST"] = options.host;
  }
  if (options.port >= 0) {
    flags["EXAI_WS_PORT"] = std::to_string(options.port);
  }
  const core::DaemonConfig config = core::load_daemon_config(load_settings(global, flags));
  net::require_safe_bind(config);

  // Before any thread exists, so that every thread inherits the mask.
  const sigset_t signals = termination_signals();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  raise_descriptor_limit(*log);

  UnwiredEngine engine;
  const auto started = std::chrono::system_clock::now();
  net::WsServer* server_view = nullptr; // set before start(); health runs after
  auto health = [&config, &server_view, started] {
    const auto now = std::chrono::system_clock::now();
    return nlohmann::json{
        {"state", "running"},
        {"pid", ::getpid()},
        {"host", config.host},
        {"port", server_view != nullptr ? server_view->port() : config.port},
        {"started_at", std::chrono::system_clock::to_time_t(started)},
        {"t", std::chrono::system_clock::to_time_t(now)},
        {"connections", server_view != nullptr ? server_view->connection_count() : 0},
        {"sessions", server_view != nullptr ? server_view->session_count() : 0},
    };
  };
  std::unique_ptr<net::WsServer> server;
  try {
    server = std::make_unique<net::WsServer>(config, engine, health, core::log::get("net"));
  } catch (const net::BindError& e) {
    log->error("serve failed error=\"{}\" (port in use? set EXAI_WS_PORT or --port)", e.what());
    return kExitUnavailable;
  }
  server_view = server.get();
  server->start();
  log->info("serve listening host={} port={}", config.host, server->port());

  int signal = 0;
  while (sigwait(&signals, &signal) != 0) {
  }
  log->info("serve stopping signal={}", signal == SIGINT ? "SIGINT" : "SIGTERM");
  server->stop_accepting();
  // TODO(lead): engine.shutdown(config.shutdown_grace) goes here: open
  // connections still receive the SHUTTING_DOWN results while it drains.
  server->stop();
  log->info("serve stopped");
  return kExitOk;
}

} // namespace

Command
add_serve(CLI::App& root)
{
  auto options = std::make_shared<ServeOptions>();
  CLI::App* cli =
      root.add_subcommand("serve", "Run the daemon in the foreground until SIGINT/SIGTERM");
  cli->add_option(
      "--host", options->host, "Address to listen on (default: EXAI_WS_HOST, 127.0.0.1)");
  cli->add_option("--port",
                  options->port,
                  "TCP port to listen on; 0 picks a free port (default: EXAI_WS_PORT, 8079)")
      ->check(CLI::Range(0, 65535));
  return {cli, [options](const GlobalOptions& global) { return run_serve(*options, global); }};
}

} // namespace exai::cmd
