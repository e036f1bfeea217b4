#pragma once

// A real `exai serve` with both providers configured, each on its own fake
// upstream, file roots and a state directory in scratch directories, and one
// connected session. Header-only: ServeProcess's default binary is the
// including test executable's EXAI_BINARY.

#include "tests/support/daemon_checks.hpp"
#include "tests/support/fake_upstream.hpp"
#include "tests/support/serve_process.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/ws_client.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

namespace exai::test {

inline constexpr const char* kKimiTestKey = "kimi-e2e-key-0123456789";
inline constexpr const char* kGlmTestKey = "glm-e2e-key-0123456789";

struct ProviderDaemon {
  FakeUpstream kimi;
  FakeUpstream glm;
  TempDir roots;
  TempDir state;
  std::unique_ptr<ServeProcess> serve;
  std::unique_ptr<WsClient> ws;

  // `extra` adds or overrides variables; `without` ("kimi" | "glm") leaves
  // that provider's key out.
  explicit ProviderDaemon(const ServeProcess::Env& extra = {}, const std::string& without = {})
  {
    ServeProcess::Env env = {{"EXAI_FILE_ROOTS", roots.path()}, {"EXAI_STATE_DIR", state.path()}};
    if (without != "kimi") {
      env["KIMI_API_KEY"] = kKimiTestKey;
      env["KIMI_API_URL"] = kimi.base_url();
    }
    if (without != "glm") {
      env["GLM_API_KEY"] = kGlmTestKey;
      env["GLM_API_URL"] = glm.base_url();
    }
    for (const auto& [key, value] : extra) {
      env[key] = value;
    }
    serve = ServeProcess::start_ready(env);
    ws = std::make_unique<WsClient>(serve->port());
    const auto ack = ws->hello();
    REQUIRE(ack);
    REQUIRE(ack->at("ok") == true);
  }

  // The call_tool_res of one call on the fixture's session.
  nlohmann::json call(const std::string& tool, const nlohmann::json& arguments)
  {
    const auto res = call_tool(*ws, "c" + std::to_string(++calls_), tool, arguments);
    REQUIRE(res);
    return *res;
  }

  // The envelope of a successful call.
  nlohmann::json reply(const std::string& tool, const nlohmann::json& arguments)
  {
    return result_envelope(call(tool, arguments));
  }

  // The parsed JSON content of a successful call's envelope.
  nlohmann::json content(const std::string& tool, const nlohmann::json& arguments)
  {
    const nlohmann::json env = reply(tool, arguments);
    INFO(env.dump());
    REQUIRE(env["content_type"] == "json");
    return nlohmann::json::parse(env["content"].get<std::string>());
  }

  // The error object of a failed call.
  nlohmann::json error(const std::string& tool, const nlohmann::json& arguments)
  {
    const nlohmann::json res = call(tool, arguments);
    INFO(res.dump());
    REQUIRE(res.contains("error"));
    return res["error"];
  }

  std::size_t upstream_requests() const { return kimi.request_count() + glm.request_count(); }

  // Writes `text` to `name` under the file roots; returns its absolute path.
  std::string file(const std::string& name, const std::string& text) const
  {
    const std::filesystem::path path = std::filesystem::path(roots.path()) / name;
    std::filesystem::create_directories(path.parent_path());
    std::ofstream(path) << text;
    return path.string();
  }

private:
  int calls_ = 0;
};

} // namespace exai::test
