// exai stress: Load and leak check against a running daemon.

#include "cmd/command.hpp"
#include "core/log.hpp"

namespace exai::cmd {

Command
add_stress(CLI::App& root)
{
  CLI::App* cli = root.add_subcommand("stress", "Load and leak check against a running daemon");
  return {cli, [](const GlobalOptions&) {
            core::log::get("cmd")->error("exai stress: not implemented yet");
            return kExitSoftware;
          }};
}

} // namespace exai::cmd
