// `exai top` end to end: one frame (--once) and the snapshot (--json) of a
// daemon with a call in flight; the interactive screen is tested under tmux
// (tests/ui/top_tmux.sh).

#include "tests/support/exai_run.hpp"
#include "tests/support/fake_upstream.hpp"
#include "tests/support/raw_client.hpp"
#include "tests/support/serve_process.hpp"
#include "tests/support/ws_client.hpp"

#include <catch2/catch.hpp>

#include <functional>
#include <thread>

namespace {

using namespace exai::test;
using nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* kToken = "operator-view-token-0123456789";

RawClient::HttpReply
get(std::uint16_t port,
    const std::string& path,
    const std::map<std::string, std::string>& headers = {})
{
  RawClient client(port);
  auto reply = client.http("GET", path, headers);
  REQUIRE(reply);
  return *reply;
}

std::map<std::string, std::string>
bearer(const std::string& token = kToken)
{
  return {{"Authorization", "Bearer " + token}};
}

json
snapshot(std::uint16_t port, const std::string& token = kToken)
{
  const auto reply =
      get(port, "/api/top", token.empty() ? std::map<std::string, std::string>{} : bearer(token));
  REQUIRE(reply.status == 200);
  const json doc = json::parse(reply.body, nullptr, false);
  REQUIRE(doc.is_object());
  return doc;
}

// Polls the snapshot until `predicate` holds; the last snapshot either way.
json
snapshot_until(std::uint16_t port,
               const std::function<bool(const json&)>& predicate,
               const std::string& token = kToken,
               std::chrono::milliseconds timeout = 10s)
{
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  json doc = snapshot(port, token);
  while (!predicate(doc) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(25ms);
    doc = snapshot(port, token);
  }
  return doc;
}

std::unique_ptr<ServeProcess>
daemon(FakeUpstream& fake, ServeProcess::Env extra = {})
{
  ServeProcess::Env env = {{"GLM_API_KEY", "glm-key-0123456789"},
                           {"GLM_API_URL", fake.base_url()},
                           {"EXAI_WS_TOKEN", kToken}};
  for (auto& [key, value] : extra) {
    env[key] = value;
  }
  return ServeProcess::start_ready(env);
}

void
start_call(WsClient& client, const std::string& request_id, const std::string& prompt)
{
  client.send_json({{"op", "call_tool"},
                    {"request_id", request_id},
                    {"name", "chat"},
                    {"arguments", {{"prompt", prompt}, {"model", "glm-4.5"}}}});
}

// Releases the fake's hung requests once `count` requests have reached it (a
// request arriving after release_hangs() would hang again).
void
release_after(FakeUpstream& fake, std::size_t count)
{
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (fake.request_count() < count && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  REQUIRE(fake.request_count() >= count);
  fake.release_hangs();
}

bool
has_call(const json& doc, const std::string& request_id)
{
  for (const auto& call : doc["inflight"]) {
    if (call["request_id"] == request_id) {
      return true;
    }
  }
  return false;
}

} // namespace

TEST_CASE("exai top --once prints the call in flight; --json prints the snapshot", "[e2e][ui]")
{
  FakeUpstream fake;
  auto serve = daemon(fake);
  WsClient client(serve->port());
  REQUIRE(client.hello(std::string(kToken)));
  start_call(client, "top-call", "for exai top [[hang]]");
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
