// Signed /mcp session ids: revocation in memory at once, on disk by persist().
#include "net/mcp/mcp_session_ids.hpp"
#include "tests/support/temp_dir.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>

namespace {

std::size_t
lines_in(const std::string& path)
{
  std::ifstream in(path);
  std::size_t n = 0;
  for (std::string line; std::getline(in, line);) {
    n += line.empty() ? 0 : 1;
  }
  return n;
}

} // namespace

TEST_CASE("a revoked session id is refused at once and once persisted by every daemon",
          "[net][mcp_http]")
{
  exai::test::TempDir state;
  exai::net::McpSessionIds ids(state.path());
  const std::string id = ids.issue("2025-06-18");
  CHECK(ids.verify(id) == "2025-06-18");
  ids.revoke(id);
  CHECK_FALSE(ids.verify(id)); // before anything is written
  // Other daemons of the install learn it from the file.
  CHECK(exai::net::McpSessionIds(state.path()).verify(id) == "2025-06-18");
  ids.persist();
  CHECK_FALSE(exai::net::McpSessionIds(state.path()).verify(id));
}

TEST_CASE("past 10000 revocations the oldest tenth is forgotten at once and the file rewritten",
          "[net][mcp_http]")
{
  exai::test::TempDir state;
  const std::string file = (std::filesystem::path(state.path()) / "mcp-revoked").string();
  exai::net::McpSessionIds ids(state.path());
  constexpr std::size_t kMax = exai::net::McpSessionIds::kMaxRevoked;
  const std::string first = ids.issue("2025-06-18");
  ids.revoke(first);
  for (std::size_t i = 1; i < kMax; ++i) {
    ids.revoke(ids.issue("2025-06-18"));
  }
  ids.persist();
  CHECK(lines_in(file) == kMax);
  const std::string last = ids.issue("2025-06-18");
  ids.revoke(last);
  ids.persist();
  CHECK(lines_in(file) == kMax - kMax / 10); // rewritten with 9,000
  // The oldest were forgotten, never the one just revoked.
  CHECK_FALSE(ids.verify(last));
  CHECK(ids.verify(first) == "2025-06-18");
  // The next 999 are appended to the 9,000, one line each.
  for (std::size_t i = 0; i < kMax / 10 - 1; ++i) {
    ids.revoke(ids.issue("2025-06-18"));
    ids.persist();
  }
  CHECK(lines_in(file) == kMax - 1);
  const exai::net::McpSessionIds reloaded(state.path());
  CHECK_FALSE(reloaded.verify(last));
  CHECK(reloaded.verify(first) == "2025-06-18");
}

TEST_CASE("without a state directory revocations are bounded in memory too", "[net][mcp_http]")
{
  exai::net::McpSessionIds ids("");
  const std::string first = ids.issue("2025-06-18");
  ids.revoke(first);
  for (std::size_t i = 0; i < exai::net::McpSessionIds::kMaxRevoked; ++i) {
    ids.revoke(ids.issue("2025-06-18"));
  }
  ids.persist();                            // nothing to write
  CHECK(ids.verify(first) == "2025-06-18"); // forgotten: the set did not grow past the bound
}
