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

TEST_CASE("a revoked session id is refused at once and, once persisted, by every daemon",
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

TEST_CASE("past 10,000 revocations a tenth is forgotten at once, so the file is rarely rewritten",
          "[net][mcp_http]")
{
  exai::test::TempDir state;
  const std::string file = (std::filesystem::path(state.path()) / "mcp-revoked").string();
  exai::net::McpSessionIds ids(state.path());
  constexpr std::size_t kMax = exai::net::McpSessionIds::kMaxRevoked;
  for (std::size_t i = 0; i < kMax; ++i) {
    ids.revoke(ids.issue("2025-06-18"));
  }
  ids.persist();
  CHECK(lines_in(file) == kMax);
  const std::string last = ids.issue("2025-06-18");
  ids.revoke(last);
  ids.persist();
  CHECK(lines_in(file) == kMax - kMax / 10); // rewritten with 9,000
  CHECK_FALSE(ids.verify(last));
  // The next 999 are appended to the 9,000, one line each.
  for (std::size_t i = 0; i < kMax / 10 - 1; ++i) {
    ids.revoke(ids.issue("2025-06-18"));
    ids.persist();
  }
  CHECK(lines_in(file) == kMax - 1);
  CHECK_FALSE(exai::net::McpSessionIds(state.path()).verify(last));
}
