#include "tests/support/provider_daemon.hpp"

#include "tests/support/daemon_checks.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <filesystem>
#include <fstream>

namespace exai::test {

namespace fs = std::filesystem;
using nlohmann::json;

ProviderDaemon::ProviderDaemon(ServeProcess::Env extra, const std::string& without)
{
  ServeProcess::Env env = {{"EXAI_FILE_ROOTS", roots.path()},
                           {"EXAI_STATE_DIR", state.path()},
                           {"EXAI_WS_PROGRESS_INTERVAL_SECS", "0.1"}};
  if (without != "kimi") {
    env["KIMI_API_KEY"] = kKimiTestKey;
    env["KIMI_API_URL"] = kimi.base_url();
  }
  if (without != "glm") {
    env["GLM_API_KEY"] = kGlmTestKey;
    env["GLM_API_URL"] = glm.base_url();
  }
  for (auto& [name, value] : extra) {
    if (const auto at = value.find("{roots}"); at != std::string::npos) {
      value.replace(at, 7, roots.path());
    }
    env[name] = value;
  }
  serve = ServeProcess::start_ready(env);
}

std::unique_ptr<WsClient>
ProviderDaemon::client()
{
  auto c = std::make_unique<WsClient>(serve->port());
  const auto ack = c->hello();
  REQUIRE(ack);
  REQUIRE(ack->at("ok") == true);
  return c;
}

WsClient&
ProviderDaemon::session()
{
  if (!session_) {
    session_ = client();
  }
  return *session_;
}

json
ProviderDaemon::call(const std::string& tool, const json& arguments)
{
  auto c = client();
  return call_on(*c, tool, arguments);
}

json
ProviderDaemon::session_call(const std::string& tool, const json& arguments)
{
  return call_on(session(), tool, arguments);
}

json
ProviderDaemon::call_on(WsClient& client, const std::string& tool, const json& arguments)
{
  static std::atomic<int> next{0};
  const auto res = call_tool(client, "p" + std::to_string(++next), tool, arguments);
  REQUIRE(res);
  return *res;
}

json
ProviderDaemon::reply(const std::string& tool, const json& arguments)
{
  return result_envelope(session_call(tool, arguments));
}

json
ProviderDaemon::content(const std::string& tool, const json& arguments)
{
  const json envelope = reply(tool, arguments);
  INFO(envelope.dump());
  REQUIRE(envelope["content_type"] == "json");
  return json::parse(envelope["content"].get<std::string>());
}

json
ProviderDaemon::error(const std::string& tool, const json& arguments)
{
  const json res = session_call(tool, arguments);
  INFO(res.dump());
  REQUIRE(res.contains("error"));
  return res["error"];
}

bool
ProviderDaemon::back_to_zero() const
{
  return capacity_back_to_zero(serve->port());
}

std::string
ProviderDaemon::file(const std::string& name, const std::string& text) const
{
  const fs::path path = fs::path(roots.path()) / name;
  fs::create_directories(path.parent_path());
  std::ofstream(path) << text;
  return path.string();
}

} // namespace exai::test
