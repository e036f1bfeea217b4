#pragma once

// Runs the exai binary as a user would, for the e2e tests of the commands
// that print and exit (detect-providers, health, stress).

#include <string>
#include <vector>

namespace exai::test {

struct ExaiRun {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// `text` as one single-quoted shell word.
std::string shell_quote(const std::string& text);

// Runs `binary args` with exactly `environment` ("NAME=value" entries, env -i)
// in an empty temporary directory, so no ./.env or user setting leaks in.
// `args` are shell words; quote any that need it with shell_quote().
ExaiRun run_exai(const std::string& binary,
                 const std::vector<std::string>& environment,
                 const std::string& args);

} // namespace exai::test
