#include "tests/support/fake_daemon.hpp"

#include "tests/support/daemon_checks.hpp"

#include <catch2/catch.hpp>

namespace exai::test {

FakeDaemon::FakeDaemon(ServeProcess::Env env, const ServeProcess::Env& extra)
{
  for (const auto& [name, value] : extra) {
    env[name] = value;
  }
  for (const char* provider : {"GLM", "KIMI"}) {
    const std::string prefix(provider);
    if (env.count(prefix + "_API_KEY") != 0) {
      env.emplace(prefix + "_API_URL", fake.base_url());
    }
  }
  if (const auto it = env.find("EXAI_WS_TOKEN"); it != env.end()) {
    token = it->second;
  }
  serve = ServeProcess::start_ready(env);
}

std::unique_ptr<WsClient>
FakeDaemon::client(const std::optional<std::string>& session)
{
  auto c = std::make_unique<WsClient>(port());
  nlohmann::json hello = {{"op", "hello"}};
  if (!token.empty()) {
    hello["token"] = token;
  }
  if (session) {
    hello["session_id"] = *session;
  }
  c->send_json(hello);
  const auto ack =
      c->recv_until([](const nlohmann::json& f) { return f.value("op", "") == "hello_ack"; },
                    deadline_in(std::chrono::seconds(5)));
  REQUIRE(ack);
  REQUIRE(ack->at("ok") == true);
  return c;
}

nlohmann::json
FakeDaemon::health() const
{
  return fetch_health(port(), token);
}

bool
FakeDaemon::back_to_zero(std::chrono::milliseconds limit) const
{
  return capacity_back_to_zero(port(), token, limit);
}

std::unique_ptr<ServeProcess>
serve_glm(const FakeUpstream& fake, const std::string& glm_key, ServeProcess::Env extra)
{
  extra.emplace("GLM_API_KEY", glm_key);
  extra.emplace("GLM_API_URL", fake.base_url());
  return ServeProcess::start_ready(extra);
}

} // namespace exai::test
