#include "tests/support/exai_run.hpp"
#include "tests/support/fake_upstream.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

using exai::test::FakeUpstream;

namespace {

constexpr const char* kKimiKey = "sk-kimi-E2E-SECRET-0123456789";
constexpr const char* kGlmKey = "glm-E2E-SECRET-abcdef.0123";

using Run = exai::test::ExaiRun;

Run
run_detect(const std::vector<std::string>& environment, const std::string& args)
{
  return exai::test::run_exai(EXAI_BINARY, environment, "detect-providers " + args);
}

void
check_no_secret(const Run& run)
{
  for (const char* key : {kKimiKey, kGlmKey}) {
    CHECK(run.out.find(key) == std::string::npos);
    CHECK(run.err.find(key) == std::string::npos);
  }
}

} // namespace

TEST_CASE("detect-providers exits 1 when no provider is configured", "[e2e][detect_providers]")
{
  const auto run = run_detect({"KIMI_API_KEY=your_kimi_api_key_here", "GLM_API_KEY="}, "");
  CHECK(run.exit_code == 1);
  CHECK(run.out.find("Providers configured: none") != std::string::npos);
  CHECK(run.out.find("absent") != std::string::npos);
}

TEST_CASE("detect-providers shows both providers, key presence and length only",
          "[e2e][detect_providers]")
{
  const auto run = run_detect({std::string("KIMI_API_KEY=") + kKimiKey,
                               std::string("ZHIPUAI_API_KEY=") + kGlmKey,
                               "GLM_ALLOWED_MODELS=glm-4.6,GLM-4.5-X"},
                              "--log-level trace");
  INFO(run.out << run.err);
  CHECK(run.exit_code == 0);
  CHECK(run.out.find("Providers configured: KIMI, GLM; GLM models: 3; Kimi models: 18") !=
        std::string::npos);
  CHECK(run.out.find("KIMI_API_KEY (" + std::to_string(std::string(kKimiKey).size()) +
                     " characters)") != std::string::npos);
  CHECK(run.out.find("ZHIPUAI_API_KEY") != std::string::npos);
  CHECK(run.out.find("https://api.moonshot.ai/v1") != std::string::npos);
  CHECK(run.out.find("GLM_ALLOWED_MODELS: glm-4.6,glm-4.5-air") != std::string::npos);
  check_no_secret(run);
}

TEST_CASE("detect-providers --json is valid JSON with the documented fields",
          "[e2e][detect_providers]")
{
  const auto run =
      run_detect({std::string("GLM_API_KEY=") + kGlmKey, "DISABLED_PROVIDERS=kimi"}, "--json");
  CHECK(run.exit_code == 0);
  const auto json = nlohmann::json::parse(run.out, nullptr, false);
  REQUIRE_FALSE(json.is_discarded());
  REQUIRE(json["providers"].size() == 2);
  const auto& kimi = json["providers"][0];
  const auto& glm = json["providers"][1];
  CHECK(kimi["id"] == "kimi");
  CHECK(kimi["available"] == false);
  CHECK(kimi["disabled_reason"] == "listed in DISABLED_PROVIDERS");
  CHECK(glm["available"] == true);
  CHECK(glm["key_present"] == true);
  CHECK(glm["key_length"] == std::string(kGlmKey).size());
  CHECK(glm["model_count"] == 6);
  CHECK(glm["models"].size() == 5);
  CHECK(glm["base_url"] == "https://api.z.ai/api/paas/v4");
  CHECK(json["default_model"] == "auto");
  CHECK(json["summary"] == "Providers configured: GLM; GLM models: 6");
  check_no_secret(run);
}

TEST_CASE("detect-providers --probe reports reachable, auth failed and unreachable",
          "[e2e][detect_providers][integration]")
{
  FakeUpstream fake({kKimiKey, "", "", {}, 16});
  const std::string url = fake.base_url();
  SECTION("reachable")
  {
    const auto run = run_detect({std::string("KIMI_API_KEY=") + kKimiKey, "KIMI_API_URL=" + url},
                                "--probe --timeout 5 --json");
    INFO(run.out << run.err);
    CHECK(run.exit_code == 0);
    const auto json = nlohmann::json::parse(run.out, nullptr, false);
    REQUIRE_FALSE(json.is_discarded());
    CHECK(json["providers"][0]["probe"]["status"] == "reachable");
    CHECK(json["providers"][0]["probe"]["http_status"] == 200);
    CHECK(json["providers"][0]["probe"]["latency_ms"].is_number());
    REQUIRE(fake.request_count() == 1);
    CHECK(fake.requests()[0].path == "/v1/models");
    check_no_secret(run);
  }
  SECTION("auth failed")
  {
    const auto run =
        run_detect({std::string("KIMI_API_KEY=") + kGlmKey, "KIMI_API_URL=" + url}, "--probe");
    CHECK(run.exit_code == 2);
    CHECK(run.out.find("Probe KIMI: auth_failed") != std::string::npos);
    check_no_secret(run);
  }
  SECTION("unreachable")
  {
    fake.stop();
    const auto run = run_detect({std::string("GLM_API_KEY=") + kGlmKey, "GLM_API_URL=" + url},
                                "--probe --timeout 1");
    CHECK(run.exit_code == 2);
    CHECK(run.out.find("Probe GLM: unreachable") != std::string::npos);
    check_no_secret(run);
  }
}

TEST_CASE("detect-providers exits 78 naming the bad setting", "[e2e][detect_providers]")
{
  const auto run =
      run_detect({std::string("KIMI_API_KEY=") + kKimiKey, "KIMI_TIMEOUT_SECS=soon"}, "");
  CHECK(run.exit_code == 78);
  CHECK(run.err.find("KIMI_TIMEOUT_SECS=soon") != std::string::npos);
  CHECK(run.err.find("[1, 3600]") != std::string::npos);
  check_no_secret(run);
}

TEST_CASE("detect-providers rejects a bad --timeout with 64", "[e2e][detect_providers]")
{
  CHECK(run_detect({}, "--timeout 0").exit_code == 64);
}
