// exai serve: run the daemon in the foreground until SIGINT/SIGTERM.

#include "cmd/command.hpp"
#include "core/calls/engine.hpp"
#include "core/config/config.hpp"
#include "core/health/health.hpp"
#include "core/health/metrics.hpp"
#include "core/health/state_dir.hpp"
#include "core/health/ui_snapshot.hpp"
#include "core/log.hpp"
#include "core/providers/providers.hpp"
#include "core/tools/tool_registry.hpp"
#include "core/util/descriptor_limit.hpp"
#include "core/util/random_id.hpp"
#include "net/http/health_routes.hpp"
#include "net/http/ui_routes.hpp"
#include "net/mcp/mcp_http.hpp"
#include "net/redis/redis_lease_backend.hpp"
#include "net/redis/redis_store.hpp"
#include "net/server/ws_server.hpp"
#include "net/upstream/upstream_client.hpp"

#include <nlohmann/json.hpp>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <ctime>
#include <memory>
#include <string>

namespace exai::cmd {

namespace {

struct ServeOptions {
  std::string host; // empty = from the environment / default
  int port = -1;    // -1 = from the environment / default
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

int
run_serve(const ServeOptions& options, const GlobalOptions& global)
{
  const auto log = core::log::get("cmd");
  const core::Settings::Map flags = endpoint_flags(options.host, options.port);
  const core::Settings settings = load_settings(global, flags);
  const core::DaemonConfig config = core::load_daemon_config(settings);
  net::require_safe_bind(config);
  const core::ProviderRegistry& providers = core::init_process_providers(settings);
  const core::ToolRegistry& tools = core::process_tools();

  // Before any thread exists, so that every thread inherits the mask.
  const sigset_t signals = termination_signals();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  // A kept-alive upstream connection the server closed is an outcome, not a
  // crash: OpenSSL writes (close_notify) without MSG_NOSIGNAL.
  std::signal(SIGPIPE, SIG_IGN);
  // One descriptor per connection: MAX_CONNECTIONS is often beyond the soft limit.
  const auto nofile = core::raise_descriptor_limit();
  if (nofile < config.max_connections + 64) {
    log->warn("descriptor limit below MAX_CONNECTIONS nofile={} max_connections={}",
              nofile,
              config.max_connections);
  } else {
    log->debug("descriptor limit nofile={}", nofile);
  }

  const core::PidFile pid_file(config.state_dir); // one daemon per state dir
  log->info("{}", providers.summary());
  for (const auto& warning : providers.warnings()) {
    log->warn("provider configuration: {}", warning);
  }
  net::UpstreamClient upstream(net::endpoints_from(providers, config),
                               net::upstream_options_from(settings, config),
                               core::log::get("net"));
  // Shared capacity through Redis (EXAI_REDIS_URL): before the engine, so
  // that it outlives every permit. Refused credentials stop start-up (78);
  // an unreachable Redis starts degraded.
  std::unique_ptr<net::RedisLeaseBackend> redis_leases;
  std::unique_ptr<core::SharedCapacity> shared_capacity;
  std::unique_ptr<net::RedisStore> redis_store; // conversations and results
  if (config.redis) {
    redis_store = std::make_unique<net::RedisStore>(*config.redis, config.redis_timeout);
    redis_leases = std::make_unique<net::RedisLeaseBackend>(
        *config.redis, config.redis_timeout, config.redis_prefix + "cap:released");
    core::SharedCapacityOptions shared_options;
    shared_options.lease_ttl = config.redis_lease_ttl;
    shared_options.failure = config.redis_failure;
    shared_options.local_share = config.redis_local_share;
    shared_options.daemon_id = core::random_hex(8);
    shared_options.key_prefix = config.redis_prefix + "cap:";
    shared_options.write_queue_max_bytes = config.redis_write_queue_max_bytes;
    shared_capacity = std::make_unique<core::SharedCapacity>(*redis_leases, shared_options);
    log->info("shared capacity redis={}:{} mode={} lease_ttl_ms={} failure={}",
              config.redis->host,
              config.redis->port,
              shared_capacity->stats().shared ? "shared" : "degraded",
              config.redis_lease_ttl.count(),
              core::failure_mode_name(config.redis_failure));
  }
  core::EngineDeps deps{config, providers, tools, upstream, &upstream};
  deps.shared = shared_capacity.get();
  deps.store = redis_store.get();
  core::Engine engine(deps);

  std::atomic<core::DaemonState> state{core::DaemonState::starting};
  const auto started = std::chrono::system_clock::now();
  std::atomic<net::WsServer*> server_view{nullptr};    // set before start()
  std::atomic<net::McpHttpService*> mcp_view{nullptr}; // set before start()
  auto inputs = [&] {
    core::HealthInputs in;
    in.state = state.load();
    in.pid = ::getpid();
    in.host = config.host;
    const net::WsServer* server = server_view.load();
    in.port = server != nullptr ? server->port() : config.port;
    in.started_at = started;
    in.now = std::chrono::system_clock::now();
    in.tool_count = engine.listed_tool_count();
    in.engine = engine.stats();
    if (server != nullptr) {
      const std::size_t attached = server->attached_session_count();
      const std::size_t known = server->session_count();
      const net::HubStats hub = server->hub_stats();
      in.server = {hub.websockets,
                   attached,
                   known > attached ? known - attached : 0,
                   hub.pending,
                   hub.established,
                   hub.evicted,
                   hub.refused,
                   hub.body_bytes,
                   hub.bodies_refused};
    }
    if (net::McpHttpService* mcp = mcp_view.load()) {
      in.mcp_sessions = mcp->session_count();
    }
    in.rss_bytes = core::process_rss_bytes();
    return in;
  };
  auto health = [&inputs] { return core::health_json(inputs()); };
  engine.set_health_source(health); // before any call: the server starts below

  std::unique_ptr<net::WsServer> server;
  try {
    server = std::make_unique<net::WsServer>(config, engine, health, core::log::get("net"));
  } catch (const net::BindError& e) {
    log->error("serve failed error=\"{}\" (port in use? set EXAI_WS_PORT or --port)", e.what());
    return kExitUnavailable;
  }
  server_view = server.get();
  net::register_health_routes(
      server->router(),
      health,
      [&inputs] { return core::render_prometheus(inputs()); },
      server->tokens());
  if (config.ui) {
    net::register_ui_routes(
        server->router(),
        [&inputs, &engine, &config] {
          core::UiInputs in;
          in.health = inputs();
          in.inflight = engine.inflight_calls();
          if (core::ToolCallLog* calls = engine.toolcall_log()) {
            in.recent = calls->recent();
            in.per_minute = calls->per_minute();
          }
          in.show_content = config.ui_show_content;
          return core::ui_snapshot_json(in);
        },
        server->tokens());
  }
  const auto mcp = net::register_mcp_routes(server->router(), engine, config, server->tokens());
  mcp_view = mcp.get();
  core::HealthFileWriter health_file(
      config.state_dir + "/ws_daemon.health.json",
      [&health] { return health().dump(2); },
      config.health_interval);

  server->start();
  state = core::DaemonState::serving;
  health_file.write_now();
  log->info("serve listening host={} port={}", config.host, server->port());

  int signal = 0;
  while (sigwait(&signals, &signal) != 0) {
  }
  log->info("serve stopping signal={} grace_ms={}",
            signal == SIGINT ? "SIGINT" : "SIGTERM",
            config.shutdown_grace.count());
  state = core::DaemonState::stopping;
  health_file.write_now();
  server->stop_accepting();
  // Open connections still receive results (or SHUTTING_DOWN) while calls drain.
  engine.shutdown(config.shutdown_grace);
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
