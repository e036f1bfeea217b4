#pragma once

#include "core/config/config.hpp"
#include "core/config/settings.hpp"

#include <CLI/CLI.hpp>

#include <functional>
#include <string>

namespace exai::cmd {

// Exit codes (from <sysexits.h>), documented in man/exai.1 under EXIT STATUS.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;      // the command ran and reported failure
inline constexpr int kExitUsage = 64;       // EX_USAGE: bad command line
inline constexpr int kExitUnavailable = 69; // EX_UNAVAILABLE: cannot bind / reach
inline constexpr int kExitSoftware = 70;    // EX_SOFTWARE: bug or not implemented
inline constexpr int kExitConfig = 78;      // EX_CONFIG: bad configuration

// Options every subcommand shares (declared on the root app).
struct GlobalOptions {
  std::string env_file;
  std::string log_level = "info";
  std::string log_format = "text";
};

// One subcommand: its CLI11 node plus what to run once parsing succeeded.
struct Command {
  CLI::App* cli = nullptr; // owned by the root CLI::App
  std::function<int(const GlobalOptions&)> run;
};

// The layered settings for this process: `flags` (from the subcommand's own
// options) over the environment over the env file (--env-file, else
// $ENV_FILE, else ./.env if present). Throws core::Error(config_invalid) for
// an unreadable or malformed env file.
core::Settings load_settings(const GlobalOptions& global, core::Settings::Map flags = {});

// The flag layer for --host/--port options: EXAI_WS_HOST when `host` is not
// empty, EXAI_WS_PORT when `port` is not negative.
core::Settings::Map endpoint_flags(const std::string& host, int port);

// The --url and --timeout options of a subcommand that asks a running
// daemon over HTTP (health, top).
void add_daemon_http_options(CLI::App& cli, std::string& url, double& timeout_s);

// The daemon such a subcommand asks: `url` (its --url), else
// http://EXAI_WS_HOST:EXAI_WS_PORT from `config`.
std::string daemon_base_url(const std::string& url, const core::DaemonConfig& config);

// One GET of `path` from the daemon at `base_url`, the token (when not
// empty) as a Bearer header. Throws Poco::Exception when no daemon answers.
struct DaemonReply {
  int status = 0;
  std::string body;
};
DaemonReply daemon_get(const std::string& base_url,
                       const std::string& path,
                       const std::string& token,
                       double timeout_s);

// Each lives in its own cmd/<name>.cpp.
Command add_serve(CLI::App& root);
Command add_detect_providers(CLI::App& root);
Command add_health(CLI::App& root);
Command add_stress(CLI::App& root);
Command add_mcp(CLI::App& root);
Command add_top(CLI::App& root);

// Runs `command`, turning escaped exceptions into logged exit codes.
int run_guarded(const Command& command, const GlobalOptions& global);

} // namespace exai::cmd
