#pragma once

// How the fake upstream streams a chat completion (`stream: true`): the
// reply it would have sent whole, cut into OpenAI-style chunk events.

#include "tests/support/fake_upstream.hpp"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace exai::test {

// The SSE events ("data: ...\n\n", plus a leading comment) that stream
// `reply` (a chat.completion object): a role chunk, the content in
// `behavior.chunks` pieces (one piece with [[big_event=N]]) cut at UTF-8
// character boundaries, tool calls as fragments (id and name first, the
// arguments in two pieces), a finish chunk carrying the usage — inside the
// choice for Kimi models (as Kimi does), top-level otherwise (as GLM does) —
// and [DONE] (not with [[no_done]]). [[sse_error]] and [[malformed]] (when
// `fail`) end the list after the first content piece with an error event or
// a malformed one.
std::vector<std::string>
sse_events(const nlohmann::json& reply, const FakeBehavior& behavior, bool fail);

} // namespace exai::test
