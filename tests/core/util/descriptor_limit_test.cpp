#include "core/util/descriptor_limit.hpp"

#include <catch2/catch.hpp>

#include <sys/resource.h>

TEST_CASE("the descriptor limit is raised to the hard limit", "[core]")
{
  rlimit before{};
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &before) == 0);
  const std::uint64_t raised = exai::core::raise_descriptor_limit();
  rlimit after{};
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &after) == 0);
  CHECK(raised == after.rlim_cur);
  CHECK(after.rlim_cur == before.rlim_max);
  CHECK(exai::core::raise_descriptor_limit() == raised); // idempotent
}
