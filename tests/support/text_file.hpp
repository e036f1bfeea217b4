#pragma once

// Whole files as text, for tests that check what was written. Header-only so
// that core tests, which link no test support library, can use it.

#include <fstream>
#include <sstream>
#include <string>

namespace exai::test {

// The file's contents; empty when it cannot be read.
inline std::string
read_text(const std::string& path)
{
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

#ifdef EXAI_SOURCE_DIR
// A tool's system prompt as the source tree has it (core/tools/prompts/).
inline std::string
prompt_file(const std::string& tool)
{
  return read_text(std::string(EXAI_SOURCE_DIR) + "/core/tools/prompts/" + tool + ".txt");
}
#endif

} // namespace exai::test
