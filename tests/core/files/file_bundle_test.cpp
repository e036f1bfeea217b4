#include "core/error.hpp"
#include "core/files/file_bundle.hpp"
#include "tests/support/temp_dir.hpp"

#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <sys/time.h>

#include <filesystem>
#include <fstream>

using namespace exai::core;
namespace fs = std::filesystem;

namespace {

void
write(const std::string& path, const std::string& text)
{
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

void
set_mtime(const std::string& path, long seconds)
{
  const timeval times[2] = {{seconds, 0}, {seconds, 0}};
  REQUIRE(::utimes(path.c_str(), times) == 0);
}

FileRequest
request(std::vector<std::string> paths, std::size_t budget = 100000)
{
  FileRequest r;
  r.paths = std::move(paths);
  r.token_budget = budget;
  return r;
}

bool
skipped_for(const FileBundle& bundle, const std::string& path_part, const std::string& reason_part)
{
  for (const auto& s : bundle.skipped) {
    if (s.path.find(path_part) != std::string::npos &&
        s.reason.find(reason_part) != std::string::npos) {
      return true;
    }
  }
  return false;
}

} // namespace

TEST_CASE("a file is embedded with markers and line numbers", "[core][files]")
{
  std::size_t lines = 0;
  const std::string block = render_file("/p/a.py", "one\r\ntwo\rthree\nfour", &lines);
  CHECK(lines == 4);
  CHECK(
      block ==
      "--- BEGIN FILE: /p/a.py (4 lines) ---\n"
      "   1\xe2\x94\x82 one\n   2\xe2\x94\x82 two\n   3\xe2\x94\x82 three\n   4\xe2\x94\x82 four\n"
      "--- END FILE: /p/a.py ---\n");
  CHECK(estimate_tokens("abcd") == 1);
  CHECK(estimate_tokens("abcde") == 2);
}

TEST_CASE("directories expand, skipping hidden, dependency, build and binary files",
          "[core][files]")
{
  exai::test::TempDir tmp;
  const std::string root = fs::canonical(tmp.path()).string();
  write(root + "/proj/src/main.cpp", "int main() {}\n");
  write(root + "/proj/Makefile", "all:\n");
  write(root + "/proj/.git/config", "[core]\n");
  write(root + "/proj/.env", "KEY=secret\n");
  write(root + "/proj/node_modules/x/index.js", "x\n");
  write(root + "/proj/build/out.o", "obj\n");
  write(root + "/proj/logo.png", std::string("\x89PNG\0\0\0", 8));
  const FileRoots roots({root});
  const auto bundle = collect_files(roots, request({root + "/proj"}));
  std::vector<std::string> paths;
  for (const auto& file : bundle.embedded) {
    paths.push_back(file.path);
  }
  std::sort(paths.begin(), paths.end());
  CHECK(paths == std::vector<std::string>{root + "/proj/Makefile", root + "/proj/src/main.cpp"});
  CHECK(skipped_for(bundle, "/.git", "hidden"));
  CHECK(skipped_for(bundle, "/.env", "hidden"));
  CHECK(skipped_for(bundle, "node_modules", "excluded folder"));
  CHECK(skipped_for(bundle, "/build", "excluded folder"));
  CHECK(skipped_for(bundle, "logo.png", "binary"));
  CHECK(bundle.text.find("KEY=secret") == std::string::npos);
  CHECK(bundle.text.find("--- BEGIN FILE: " + root + "/proj/src/main.cpp (1 lines) ---") !=
        std::string::npos);
}

TEST_CASE("a directory entry that leads outside the roots is skipped and named", "[core][files]")
{
  exai::test::TempDir tmp;
  const std::string base = fs::canonical(tmp.path()).string();
  write(base + "/root/ok.txt", "fine\n");
  write(base + "/outside/secret.txt", "secret\n");
  fs::create_symlink(base + "/outside/secret.txt", base + "/root/escape.txt");
  fs::create_directory_symlink(base + "/root", base + "/root/loop");
  const FileRoots roots({base + "/root"});
  const auto bundle = collect_files(roots, request({base + "/root"}));
  CHECK(bundle.embedded.size() == 1);
  CHECK(bundle.text.find("secret") == std::string::npos);
  CHECK(skipped_for(bundle, "escape.txt", "outside the allowed roots"));
}

TEST_CASE("a named path that breaks a rule fails the call naming the field and the rule",
          "[core][files]")
{
  exai::test::TempDir tmp;
  const FileRoots roots({tmp.path()});
  try {
    (void)collect_files(roots, request({tmp.path(), "/etc/passwd"}));
    FAIL("expected a validation error");
  } catch (const Error& e) {
    CHECK(e.code() == Errc::validation_error);
    CHECK_THAT(e.what(), Catch::Contains("files[1] '/etc/passwd' is outside the allowed roots"));
    CHECK(e.details()["field"] == "files[1]");
    CHECK(e.details()["value"] == "/etc/passwd");
  }
}

TEST_CASE("over budget: named files first, then the newest; the rest is listed with sizes",
          "[core][files]")
{
  exai::test::TempDir tmp;
  const std::string root = fs::canonical(tmp.path()).string();
  const std::string body(400, 'x'); // ~100+ tokens each once rendered
  write(root + "/named.txt", body);
  write(root + "/dir/old.txt", body);
  write(root + "/dir/new.txt", body);
  set_mtime(root + "/dir/old.txt", 1000000000);
  set_mtime(root + "/dir/new.txt", 1700000000);
  const FileRoots roots({root});
  const std::size_t one = estimate_tokens(render_file(root + "/dir/new.txt", body));
  // Room for two files: the named one and the newest of the directory.
  const auto bundle =
      collect_files(roots, request({root + "/dir", root + "/named.txt"}, one * 2 + 8));
  REQUIRE(bundle.embedded.size() == 2);
  CHECK(bundle.embedded[0].path == root + "/named.txt");
  CHECK(bundle.embedded[1].path == root + "/dir/new.txt");
  CHECK(skipped_for(bundle, "old.txt", "over the token budget"));
  CHECK(bundle.tokens <= one * 2 + 8);
}

TEST_CASE("files over the size cap are skipped; unchanged files are not sent twice",
          "[core][files]")
{
  exai::test::TempDir tmp;
  const std::string root = fs::canonical(tmp.path()).string();
  write(root + "/big.txt", std::string(2000, 'b'));
  write(root + "/same.txt", "same\n");
  write(root + "/changed.txt", "v1\n");
  const FileRoots roots({root});
  auto req = request({root + "/big.txt", root + "/same.txt", root + "/changed.txt"});
  req.max_file_bytes = 1000;
  const auto first = collect_files(roots, req);
  CHECK(skipped_for(first, "big.txt", "larger than EXAI_FILE_MAX_BYTES (2000 bytes > 1000 bytes)"));
  REQUIRE(first.embedded.size() == 2);
  std::map<std::string, FileStamp, std::less<>> sent;
  for (const auto& file : first.embedded) {
    sent[file.path] = file.stamp;
  }
  write(root + "/changed.txt", "version two\n");
  req.already_sent = &sent;
  const auto second = collect_files(roots, req);
  REQUIRE(second.embedded.size() == 1);
  CHECK(second.embedded[0].path == root + "/changed.txt");
  CHECK(skipped_for(second, "same.txt", "unchanged since it was sent earlier"));
}
