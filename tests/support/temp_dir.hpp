#pragma once

// A scratch directory under /tmp, removed with everything in it on scope exit.
// Header-only so that core tests, which link no test support library, can use it.

#include <stdlib.h>

#include <filesystem>
#include <string>

namespace exai::test {

class TempDir {
public:
  TempDir()
  {
    std::string tmpl = (std::filesystem::temp_directory_path() / "exai-test-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data()) != nullptr ? tmpl : std::string();
  }
  ~TempDir()
  {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const noexcept { return path_; }

private:
  std::string path_;
};

} // namespace exai::test
