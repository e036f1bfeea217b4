// precommit: git's view of a real temporary repository reaches the expert;
// paths outside the roots or outside any repository are refused.

#include "core/tools/prompts.hpp"
#include "tests/core/tools/workflow/workflow_bench.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>

using namespace exai::core;
using namespace exai::core::workflow_test;

namespace {

// A git repository at `dir` with one commit, then one staged and one
// unstaged change.
void
make_repo(const std::string& dir)
{
  const std::string git = "git -C '" + dir + "' -c user.name=exai -c user.email=exai@test ";
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/a.txt") << "one\n";
  std::ofstream(dir + "/b.txt") << "two\n";
  REQUIRE(std::system((git + "init -q && " + git + "add a.txt b.txt && " + git + "commit -qm init")
                          .c_str()) == 0);
  std::ofstream(dir + "/a.txt", std::ios::app) << "staged line\n";
  REQUIRE(std::system((git + "add a.txt").c_str()) == 0);
  std::ofstream(dir + "/b.txt", std::ios::app) << "unstaged line\n";
}

} // namespace

TEST_CASE("precommit sends git's status and diffs to the expert", "[core][workflow][precommit]")
{
  Bench b;
  const std::string repo = b.dir.path() + "/repo";
  make_repo(repo);
  const std::string id =
      b.call("precommit", step(1, 2, true, "reviewing my change", {{"path", repo}}))
          .reply["continuation_id"];
  CHECK(b.chat.requests.empty()); // no git, no model before the final step
  auto done = b.call("precommit", step(2, 2, false, "looks complete", {{"continuation_id", id}}));
  REQUIRE_FALSE(done.error);
  CHECK(done.reply["status"] == "precommit_complete");
  REQUIRE(b.chat.requests.size() == 1);
  CHECK(b.chat.requests[0].messages[0].content == prompts::get("precommit"));
  const std::string brief = b.chat.requests[0].messages[1].content;
  CHECK(brief.find("=== GIT STATUS ===") != std::string::npos);
  CHECK(brief.find("M  a.txt") != std::string::npos);
  CHECK(brief.find(" M b.txt") != std::string::npos);
  CHECK(brief.find("STAGED CHANGES") != std::string::npos);
  CHECK(brief.find("+staged line") != std::string::npos);
  CHECK(brief.find("+unstaged line") != std::string::npos);

  auto staged_only =
      b.call("precommit", step(1, 1, false, "x", {{"path", repo}, {"include_unstaged", false}}));
  REQUIRE_FALSE(staged_only.error);
  const std::string staged = b.chat.requests.back().messages[1].content;
  CHECK(staged.find("+staged line") != std::string::npos);
  CHECK(staged.find("+unstaged line") == std::string::npos);

  auto against =
      b.call("precommit", step(1, 1, false, "x", {{"path", repo}, {"compare_to", "HEAD"}}));
  REQUIRE_FALSE(against.error);
  const std::string compared = b.chat.requests.back().messages[1].content;
  CHECK(compared.find("CHANGES AGAINST HEAD") != std::string::npos);
  CHECK(compared.find("+unstaged line") != std::string::npos);
}

TEST_CASE("precommit refuses a path that is no repository inside the roots",
          "[core][workflow][precommit]")
{
  Bench b;
  SECTION("step 1 needs a path")
  {
    CHECK(field_of(b.call("precommit", step(1, 1, false, "x"))) == "path");
  }
  SECTION("a directory that is no git repository")
  {
    const std::string plain = b.dir.path() + "/plain";
    std::filesystem::create_directories(plain);
    auto out = b.call("precommit", step(1, 1, false, "x", {{"path", plain}}));
    CHECK(invalid_field(out) == "path");
    CHECK(out.details["rule"] == "is not inside a git repository");
  }
  SECTION("a repository reaching outside the roots")
  {
    const std::string repo = b.dir.path() + "/repo";
    make_repo(repo);
    std::filesystem::create_directories(repo + "/sub");
    b.roots = FileRoots({repo + "/sub"});
    auto out = b.call("precommit", step(1, 1, false, "x", {{"path", repo + "/sub"}}));
    CHECK(field_of(out) == "path");
    CHECK(out.details["rule"].get<std::string>().find("outside EXAI_FILE_ROOTS") !=
          std::string::npos);
  }
  SECTION("a compare_to that looks like an option")
  {
    const std::string repo = b.dir.path() + "/repo";
    make_repo(repo);
    auto out = b.call("precommit",
                      step(1, 1, false, "x", {{"path", repo}, {"compare_to", "--output=/tmp/x"}}));
    CHECK(field_of(out) == "compare_to");
  }
  CHECK(b.chat.requests.empty());
}
