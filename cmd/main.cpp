// exai: one binary, one subcommand per file under cmd/.

#include "cmd/command.hpp"
#include "core/log.hpp"

#include <cstdio>
#include <exception>
#include <vector>

namespace {

int
run(int argc, char** argv)
{
  CLI::App app{"exai - shared daemon for the Kimi and GLM model APIs", "exai"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "exai " EXAI_VERSION);
  exai::cmd::GlobalOptions global;
  app.add_option("--env-file", global.env_file, "KEY=value file (default: $ENV_FILE, else ./.env)");
  app.add_option("--log-level", global.log_level, "trace|debug|info|warn|error")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  app.add_option("--log-format", global.log_format, "text|json")
      ->capture_default_str()
      ->check(CLI::IsMember({"text", "json"}));
  app.fallthrough();

  // The subcommand list, in --help order. Adding one = one file + one line.
  const std::vector<exai::cmd::Command> commands = {
      exai::cmd::add_serve(app),
      exai::cmd::add_detect_providers(app),
      exai::cmd::add_health(app),
      exai::cmd::add_stress(app),
      exai::cmd::add_mcp(app),
      exai::cmd::add_top(app),
  };

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e); // prints help, version or the diagnostic
    return rc == 0 ? exai::cmd::kExitOk : exai::cmd::kExitUsage;
  }

  exai::core::log::init(spdlog::level::from_str(global.log_level),
                        global.log_format == "json" ? exai::core::log::Format::json
                                                    : exai::core::log::Format::text);
  for (const auto& command : commands) {
    if (command.cli->parsed()) {
      return exai::cmd::run_guarded(command, global);
    }
  }
  return exai::cmd::kExitUsage; // unreachable: require_subcommand(1)
}

} // namespace

int
main(int argc, char** argv)
{
  // Last line of defence: nothing may escape main() (bugprone-exception-escape).
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "exai: fatal: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "exai: fatal: unknown exception\n");
  }
  return exai::cmd::kExitSoftware;
}
