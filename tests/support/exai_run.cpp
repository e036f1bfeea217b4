#include "tests/support/exai_run.hpp"

#include "tests/support/temp_dir.hpp"

#include <catch2/catch.hpp>

#include <stdio.h>
#include <sys/wait.h>

#include <array>
#include <filesystem>
#include <fstream>
#include <iterator>

namespace exai::test {

std::string
shell_quote(const std::string& text)
{
  std::string quoted = "'";
  for (const char c : text) {
    quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  }
  return quoted + "'";
}

ExaiRun
run_exai(const std::string& binary,
         const std::vector<std::string>& environment,
         const std::string& args)
{
  const TempDir dir;
  REQUIRE_FALSE(dir.path().empty());
  const std::filesystem::path stderr_file = std::filesystem::path(dir.path()) / "stderr";
  std::string command = "cd " + shell_quote(dir.path()) + " && env -i";
  for (const auto& entry : environment) {
    command += " " + shell_quote(entry);
  }
  command += " " + shell_quote(binary) + " " + args + " 2>" + shell_quote(stderr_file.string());
  ExaiRun run;
  FILE* pipe = ::popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::array<char, 4096> chunk{};
  std::size_t n = 0;
  while ((n = std::fread(chunk.data(), 1, chunk.size(), pipe)) > 0) {
    run.out.append(chunk.data(), n);
  }
  const int status = ::pclose(pipe);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream err(stderr_file);
  run.err.assign(std::istreambuf_iterator<char>(err), std::istreambuf_iterator<char>());
  return run;
}

} // namespace exai::test
