#pragma once

// Shared by the capacity tests: after the work, nothing is held or waiting
// in any scope and no per-scope limiter is left behind.

#include "core/capacity/capacity_controller.hpp"

#include <catch2/catch.hpp>

namespace exai::test {

inline void
check_all_zero(const core::CapacityController& controller)
{
  const auto snap = controller.snapshot();
  CHECK(snap.global.in_use == 0);
  CHECK(snap.global.waiting == 0);
  for (const auto& [id, stats] : snap.providers) {
    CAPTURE(id);
    CHECK(stats.in_use == 0);
    CHECK(stats.waiting == 0);
  }
  CHECK(snap.sessions.in_use == 0);
  CHECK(snap.sessions.waiting == 0);
  CHECK(snap.conversations.in_use == 0);
  CHECK(snap.conversations.waiting == 0);
  CHECK(snap.session_limiters == 0);
  CHECK(snap.conversation_limiters == 0);
}

} // namespace exai::test
