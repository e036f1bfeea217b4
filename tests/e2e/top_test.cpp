// `exai top` end to end: one frame (--once) and the snapshot (--json) of a
// daemon with a call in flight; the interactive screen is tested under tmux
// (tests/ui/top_tmux.sh).
#include "tests/support/exai_run.hpp"
#include "tests/support/operator_view.hpp"

#include <catch2/catch.hpp>

#include <functional>
#include <thread>

using namespace exai::test;
using namespace exai::test::operator_view;
using nlohmann::json;
using namespace std::chrono_literals;

TEST_CASE("exai top --once prints the call in flight; --json prints the snapshot", "[e2e][ui]")
{
  FakeUpstream fake;
  auto serve = daemon(fake);
  WsClient client(serve->port());
  REQUIRE(client.hello(std::string(kToken)));
  start_chat(client, "top-call", "for exai top [[hang]]");
  REQUIRE(has_call(
      snapshot_until(serve->port(), [](const json& doc) { return has_call(doc, "top-call"); }),
      "top-call"));
  const std::vector<std::string> env = {"PATH=/usr/bin:/bin",
                                        "EXAI_WS_PORT=" + std::to_string(serve->port()),
                                        std::string("EXAI_WS_TOKEN=") + kToken};
  const auto once = run_exai(EXAI_BINARY, env, "top --once");
  CHECK(once.exit_code == 0);
  CHECK(once.out.find("exai top - healthy") != std::string::npos);
  CHECK(once.out.find("calls in flight: 1") != std::string::npos);
  CHECK(once.out.find("chat") != std::string::npos);
  CHECK(once.out.find("glm-4.5") != std::string::npos);
  CHECK(once.out.find("running") != std::string::npos);
  CHECK(once.out.find("\x1b[") == std::string::npos); // no escapes in a one-shot frame

  const auto filtered = run_exai(EXAI_BINARY, env, "top --once --filter nosuchtool");
  CHECK(filtered.out.find("0 shown") != std::string::npos);

  const auto as_json = run_exai(EXAI_BINARY, env, "top --json");
  CHECK(as_json.exit_code == 0);
  const json doc = json::parse(as_json.out, nullptr, false);
  REQUIRE(doc.is_object());
  CHECK(doc["inflight"][0]["request_id"] == "top-call");

  const auto refused = run_exai(EXAI_BINARY,
                                {"PATH=/usr/bin:/bin",
                                 "EXAI_WS_PORT=" + std::to_string(serve->port()),
                                 "EXAI_WS_TOKEN=operator-view-token-wrong-000"},
                                "top --once");
  CHECK(refused.exit_code == 69);
  CHECK(refused.err.find("refused the token") != std::string::npos);
  release_after(fake, 1);
}
