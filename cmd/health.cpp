// exai health: Report a running daemon's health (for scripts).

#include "cmd/command.hpp"
#include "core/log.hpp"

namespace exai::cmd {

Command
add_health(CLI::App& root)
{
  CLI::App* cli = root.add_subcommand("health", "Report a running daemon's health (for scripts)");
  return {cli, [](const GlobalOptions&) {
            core::log::get("cmd")->error("exai health: not implemented yet");
            return kExitSoftware;
          }};
}

} // namespace exai::cmd
