#include "tests/support/operator_view.hpp"

#include <catch2/catch.hpp>

#include <thread>

namespace exai::test::operator_view {

using nlohmann::json;
using namespace std::chrono_literals;

RawClient::HttpReply
get(std::uint16_t port, const std::string& path, const std::map<std::string, std::string>& headers)
{
  RawClient client(port);
  auto reply = client.http("GET", path, headers);
  REQUIRE(reply);
  return *reply;
}

std::map<std::string, std::string>
bearer(const std::string& token)
{
  return {{"Authorization", "Bearer " + token}};
}

json
snapshot(std::uint16_t port, const std::string& token)
{
  const auto reply =
      get(port, "/api/top", token.empty() ? std::map<std::string, std::string>{} : bearer(token));
  REQUIRE(reply.status == 200);
  const json doc = json::parse(reply.body, nullptr, false);
  REQUIRE(doc.is_object());
  return doc;
}

json
snapshot_until(std::uint16_t port,
               const std::function<bool(const json&)>& predicate,
               const std::string& token,
               std::chrono::milliseconds timeout)
{
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  json doc = snapshot(port, token);
  while (!predicate(doc) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(25ms); // re-polled; the deadline bounds the wait
    doc = snapshot(port, token);
  }
  return doc;
}

std::unique_ptr<ServeProcess>
daemon(FakeUpstream& fake, ServeProcess::Env extra)
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
start_chat(WsClient& client, const std::string& request_id, const std::string& prompt)
{
  client.send_json({{"op", "call_tool"},
                    {"request_id", request_id},
                    {"name", "chat"},
                    {"arguments", {{"prompt", prompt}, {"model", "glm-4.5"}}}});
}

void
release_after(FakeUpstream& fake, std::size_t count)
{
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (fake.request_count() < count && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms); // re-checked; the deadline bounds the wait
  }
  REQUIRE(fake.request_count() >= count);
  fake.release_hangs();
}

const json*
find_call(const json& doc, const std::string& request_id)
{
  for (const auto& call : doc["inflight"]) {
    if (call["request_id"] == request_id) {
      return &call;
    }
  }
  return nullptr;
}

} // namespace exai::test::operator_view
