// exai mcp: stdio MCP server (newline-delimited JSON-RPC) bridging to the daemon.

#include "cmd/command.hpp"
#include "core/config/config.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "net/mcp/mcp_bridge.hpp"

#include <Poco/Exception.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/Net/StreamSocket.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

namespace exai::cmd {

namespace {

struct McpOptions {
  std::string url;  // ws://host:port[/path]
  std::string host; // empty = EXAI_WS_HOST
  int port = -1;    // -1 = EXAI_WS_PORT
  // The bridge's defaults, stated once in net::BridgeOptions.
  double connect_timeout_s =
      std::chrono::duration<double>(net::BridgeOptions{}.connect_timeout).count();
  double exit_grace_s = std::chrono::duration<double>(net::BridgeOptions{}.exit_grace).count();
  bool autostart = false;
};

bool
daemon_listening(const net::DaemonAddress& endpoint)
{
  try {
    Poco::Net::StreamSocket socket;
    socket.connect(Poco::Net::SocketAddress(endpoint.host, endpoint.port), Poco::Timespan(1, 0));
    socket.close();
    return true;
  } catch (const Poco::Exception&) {
    return false;
  }
}

// Starts `exai serve` detached from this process (double fork + setsid), its
// output appended to <state_dir>/serve.log. The bridge's reconnect loop then
// finds it once it listens.
void
autostart_daemon(const net::DaemonAddress& endpoint,
                 const std::string& state_dir,
                 const GlobalOptions& global,
                 spdlog::logger& log)
{
  std::error_code ec;
  std::filesystem::create_directories(state_dir, ec);
  const std::string log_path = state_dir + "/serve.log";
  std::vector<std::string> args = {"exai"};
  if (!global.env_file.empty()) {
    args.insert(args.end(), {"--env-file", global.env_file});
  }
  args.insert(args.end(),
              {"serve", "--host", endpoint.host, "--port", std::to_string(endpoint.port)});
  std::vector<char*> argv;
  for (auto& arg : args) {
    argv.push_back(arg.data());
  }
  argv.push_back(nullptr);
  const pid_t child = ::fork();
  if (child < 0) {
    log.error("autostart failed error=\"{}\"", std::strerror(errno));
    return;
  }
  if (child == 0) {
    ::setsid();
    if (::fork() != 0) {
      ::_exit(0);
    }
    const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    const int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (null_fd >= 0) {
      ::dup2(null_fd, STDIN_FILENO);
    }
    if (log_fd >= 0) {
      ::dup2(log_fd, STDOUT_FILENO);
      ::dup2(log_fd, STDERR_FILENO);
    }
    ::execv("/proc/self/exe", argv.data());
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  log.info("daemon autostarted host={} port={} log={}", endpoint.host, endpoint.port, log_path);
}

int
run_mcp(const McpOptions& options, const GlobalOptions& global)
{
  const auto log = core::log::get("cmd");
  const core::Settings::Map flags = endpoint_flags(options.host, options.port);
  const core::DaemonConfig config = core::load_daemon_config(load_settings(global, flags));
  // A daemon listening on every interface is reached over loopback.
  net::DaemonAddress endpoint = net::DaemonAddress::from(config);
  if (!options.url.empty()) {
    net::apply_url(endpoint, options.url);
  }
  // stdout carries MCP only; a vanished client must not kill us mid-write.
  std::signal(SIGPIPE, SIG_IGN);
  if (options.autostart && !daemon_listening(endpoint)) {
    autostart_daemon(endpoint, config.state_dir, global, *log);
  }

  net::BridgeOptions bridge_options;
  bridge_options.connect_timeout =
      std::chrono::milliseconds(static_cast<std::int64_t>(options.connect_timeout_s * 1000));
  bridge_options.exit_grace =
      std::chrono::milliseconds(static_cast<std::int64_t>(options.exit_grace_s * 1000));
  bridge_options.server_version = EXAI_VERSION;
  bridge_options.max_bytes = config.max_bytes;
  bridge_options.tools_cache_path = config.state_dir + "/mcp-tools.json";
  auto writer = [](const std::string& message) {
    std::fwrite(message.data(), 1, message.size(), stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);
  };
  log->info("mcp starting daemon={}:{}{}", endpoint.host, endpoint.port, endpoint.path);
  net::McpBridge bridge(endpoint, bridge_options, writer, core::log::get("net"));
  const int rc = bridge.run(std::cin);
  log->info("mcp stopped");
  return rc;
}

} // namespace

Command
add_mcp(CLI::App& root)
{
  auto options = std::make_shared<McpOptions>();
  CLI::App* cli = root.add_subcommand(
      "mcp", "Stdio MCP server (newline-delimited JSON-RPC) bridging to the daemon");
  cli->add_option("--url",
                  options->url,
                  "Daemon WebSocket URL ws://HOST:PORT[/PATH] (overrides --host/--port)");
  cli->add_option("--host", options->host, "Daemon host (default: EXAI_WS_HOST, 127.0.0.1)");
  cli->add_option("--port", options->port, "Daemon port (default: EXAI_WS_PORT, 8079)")
      ->check(CLI::Range(1, 65535));
  cli->add_option("--connect-timeout",
                  options->connect_timeout_s,
                  "Seconds a call waits for an unreachable daemon before failing")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 86400.0));
  cli->add_option("--exit-grace",
                  options->exit_grace_s,
                  "Seconds unanswered calls may finish after stdin EOF before being cancelled")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 86400.0));
  cli->add_flag("--autostart",
                options->autostart,
                "Start `exai serve` in the background when no daemon is listening");
  return {cli, [options](const GlobalOptions& global) { return run_mcp(*options, global); }};
}

} // namespace exai::cmd
