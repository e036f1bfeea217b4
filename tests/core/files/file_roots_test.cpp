// Every way a call could make the daemon read outside its roots.

#include "core/files/file_roots.hpp"
#include "tests/support/temp_dir.hpp"

#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

using exai::core::FileRoots;
using exai::core::OpenedPath;
using exai::core::PathRefusal;
namespace fs = std::filesystem;

namespace {

struct Tree {
  exai::test::TempDir tmp;
  std::string root = tmp.path() + "/root";
  std::string outside = tmp.path() + "/outside";
  Tree()
  {
    fs::create_directories(root + "/src");
    fs::create_directories(outside);
    write(root + "/src/a.cpp", "int a;\n");
    write(outside + "/secret.txt", "secret\n");
  }
  static void write(const std::string& path, const std::string& text)
  {
    std::ofstream(path) << text;
  }
  FileRoots roots() const { return FileRoots({root}); }
};

std::string
refusal(const FileRoots& roots, const std::string& path)
{
  auto result = roots.open(path);
  if (auto* refused = std::get_if<PathRefusal>(&result)) {
    return refused->rule;
  }
  return {};
}

} // namespace

TEST_CASE("files under a root open; the canonical path is reported", "[core][files]")
{
  Tree t;
  auto opened = t.roots().open(t.root + "/src/../src/a.cpp");
  // '..' is refused before any resolution, even when it stays inside.
  CHECK(std::holds_alternative<PathRefusal>(opened));
  auto ok = t.roots().open(t.root + "//src/./a.cpp");
  REQUIRE(std::holds_alternative<OpenedPath>(ok));
  CHECK(std::get<OpenedPath>(ok).path == fs::canonical(t.root + "/src/a.cpp").string());
  CHECK_FALSE(std::get<OpenedPath>(ok).directory());
  auto dir = t.roots().open(t.root + "/src");
  REQUIRE(std::holds_alternative<OpenedPath>(dir));
  CHECK(std::get<OpenedPath>(dir).directory());
}

TEST_CASE("relative paths, '..', NUL and empty paths are refused without touching the disk",
          "[core][files]")
{
  Tree t;
  const auto roots = t.roots();
  CHECK_THAT(refusal(roots, "src/a.cpp"), Catch::Contains("absolute"));
  CHECK_THAT(refusal(roots, t.root + "/../outside/secret.txt"), Catch::Contains("'..'"));
  CHECK_THAT(refusal(roots, ""), Catch::Contains("empty"));
  std::string with_nul = t.root + "/src/a.cpp";
  with_nul += '\0';
  with_nul += "x";
  CHECK_THAT(refusal(roots, with_nul), Catch::Contains("NUL"));
}

TEST_CASE("paths outside the roots are refused, also through symlinks and prefixes",
          "[core][files]")
{
  Tree t;
  const auto roots = t.roots();
  CHECK_THAT(refusal(roots, t.outside + "/secret.txt"),
             Catch::Contains("outside the allowed roots"));
  CHECK_THAT(refusal(roots, "/etc/passwd"), Catch::Contains("outside the allowed roots"));
  // A symlink inside the root that points out.
  fs::create_symlink(t.outside + "/secret.txt", t.root + "/link.txt");
  CHECK_THAT(refusal(roots, t.root + "/link.txt"), Catch::Contains("once symlinks are resolved"));
  fs::create_directory_symlink(t.outside, t.root + "/linkdir");
  CHECK_THAT(refusal(roots, t.root + "/linkdir/secret.txt"), Catch::Contains("outside"));
  // A sibling whose name starts with the root's name is not under it.
  fs::create_directories(t.root + "-evil");
  Tree::write(t.root + "-evil/x.txt", "x");
  CHECK_THAT(refusal(roots, t.root + "-evil/x.txt"), Catch::Contains("outside"));
  // A symlink that stays inside is fine.
  fs::create_symlink(t.root + "/src/a.cpp", t.root + "/inside.cpp");
  CHECK(refusal(roots, t.root + "/inside.cpp").empty());
}

TEST_CASE("devices, FIFOs and sockets are refused; missing files say so", "[core][files]")
{
  Tree t;
  REQUIRE(::mkfifo((t.root + "/fifo").c_str(), 0600) == 0);
  CHECK_THAT(refusal(t.roots(), t.root + "/fifo"), Catch::Contains("FIFOs"));
  const int sock = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  const std::string sock_path = t.root + "/sock";
  REQUIRE(sock_path.size() < sizeof address.sun_path);
  std::copy(sock_path.begin(), sock_path.end(), address.sun_path);
  REQUIRE(::bind(sock, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  CHECK_THAT(refusal(t.roots(), sock_path), Catch::Contains("sockets"));
  ::close(sock);
  const FileRoots dev({"/dev"});
  CHECK_THAT(refusal(dev, "/dev/null"), Catch::Contains("devices"));
  CHECK_THAT(refusal(t.roots(), t.root + "/nope.txt"), Catch::Contains("does not exist"));
}

TEST_CASE("with no roots nothing is readable", "[core][files]")
{
  Tree t;
  const FileRoots none(std::vector<std::string>{});
  CHECK_THAT(refusal(none, t.root + "/src/a.cpp"), Catch::Contains("outside"));
  CHECK(none.describe() == "(none)");
}
