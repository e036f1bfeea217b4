#include "core/error.hpp"
#include "core/providers/providers.hpp"
#include "tests/support/race.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace exai::core;

namespace {

ProviderRegistry
build(Settings::Map environment, Settings::Map env_file = {})
{
  return ProviderRegistry::build(Settings({}, std::move(environment), std::move(env_file)));
}

std::string
config_error(Settings::Map environment)
{
  try {
    (void)build(std::move(environment));
  } catch (const Error& e) {
    CHECK(e.code() == Errc::config_invalid);
    return e.what();
  }
  FAIL("expected Error(config_invalid)");
  return {};
}

// The message of the Error that resolving `name` throws, which must have `code`.
std::string
resolve_error(const ProviderRegistry& registry, const std::string& name, Errc code)
{
  try {
    (void)registry.resolve_model(name);
  } catch (const Error& e) {
    CHECK(e.code() == code);
    return e.what();
  }
  FAIL("expected an error resolving " << name);
  return {};
}

} // namespace

TEST_CASE("no keys means no provider is configured", "[core][providers]")
{
  const auto registry = build({});
  CHECK_FALSE(registry.any_configured());
  CHECK(registry.configured().empty());
  CHECK(registry.summary() == "Providers configured: none");
  REQUIRE(registry.providers().size() == 2);
  CHECK(registry.providers()[0].id == "kimi");
  CHECK(registry.providers()[0].base_url == "https://api.moonshot.ai/v1");
  CHECK(registry.providers()[1].base_url == "https://api.z.ai/api/paas/v4");
  CHECK(registry.providers()[0].read_timeout == std::chrono::seconds(180));
  CHECK(registry.providers()[1].read_timeout == std::chrono::seconds(120));
  CHECK(registry.providers()[0].disabled_reason.find("no API key") != std::string::npos);
}

TEST_CASE("both keys configure both providers with the start-up line", "[core][providers]")
{
  const auto registry = build({{"KIMI_API_KEY", "sk-kimi-123"}, {"GLM_API_KEY", "glm-abc"}});
  CHECK(registry.summary() == "Providers configured: KIMI, GLM; GLM models: 6; Kimi models: 18");
  const auto* kimi = registry.find("kimi");
  REQUIRE(kimi != nullptr);
  CHECK(kimi->available());
  CHECK(kimi->key_variable == "KIMI_API_KEY");
  CHECK(kimi->key_length() == 11);
  CHECK(kimi->display_name == "KIMI");
  CHECK(registry.find("GLM")->display_name == "GLM");
  CHECK(registry.default_model() == "auto");
  CHECK(registry.warnings().empty());
}

TEST_CASE("fallback key variables are used when the primary is absent", "[core][providers]")
{
  SECTION("MOONSHOT_API_KEY and ZHIPUAI_API_KEY")
  {
    const auto registry = build({{"MOONSHOT_API_KEY", "m"}, {"ZHIPUAI_API_KEY", "z"}});
    CHECK(registry.find("kimi")->key_variable == "MOONSHOT_API_KEY");
    CHECK(registry.find("glm")->key_variable == "ZHIPUAI_API_KEY");
    CHECK(registry.configured().size() == 2);
  }
  SECTION("the primary wins when both are set")
  {
    const auto registry = build({{"KIMI_API_KEY", "primary"}, {"MOONSHOT_API_KEY", "fallback"}});
    CHECK(registry.find("kimi")->api_key == "primary");
  }
  SECTION("a placeholder primary falls through to the fallback")
  {
    const auto registry =
        build({{"KIMI_API_KEY", "your_kimi_api_key_here"}, {"MOONSHOT_API_KEY", "real"}});
    CHECK(registry.find("kimi")->api_key == "real");
  }
}

TEST_CASE("placeholder and empty keys count as absent", "[core][providers]")
{
  const auto registry = build({{"KIMI_API_KEY", "your_kimi_api_key_here"},
                               {"GLM_API_KEY", ""},
                               {"ZHIPUAI_API_KEY", "   "}});
  CHECK_FALSE(registry.any_configured());
  CHECK_FALSE(build({{"GLM_API_KEY", "your_glm_api_key_here"}}).any_configured());
}

TEST_CASE("the environment overrides the env file", "[core][providers]")
{
  const auto registry = build({{"KIMI_API_URL", "http://env.example/v1"}},
                              {{"KIMI_API_URL", "http://file.example/v1"}, {"KIMI_API_KEY", "k"}});
  CHECK(registry.find("kimi")->base_url == "http://env.example/v1");
  CHECK(registry.find("kimi")->available());
}

TEST_CASE("ALLOWED_PROVIDERS and DISABLED_PROVIDERS gate providers", "[core][providers]")
{
  const Settings::Map keys = {{"KIMI_API_KEY", "k"}, {"GLM_API_KEY", "g"}};
  SECTION("allowed list")
  {
    auto env = keys;
    env["ALLOWED_PROVIDERS"] = " GLM ";
    const auto registry = build(env);
    CHECK_FALSE(registry.find("kimi")->available());
    CHECK(registry.find("kimi")->disabled_reason == "not listed in ALLOWED_PROVIDERS");
    CHECK(registry.summary() == "Providers configured: GLM; GLM models: 6");
  }
  SECTION("disabled list, with a synonym")
  {
    auto env = keys;
    env["DISABLED_PROVIDERS"] = "zhipuai";
    const auto registry = build(env);
    CHECK_FALSE(registry.find("glm")->available());
    CHECK(registry.summary() == "Providers configured: KIMI; Kimi models: 18");
    // The default is auto, which routes around the missing provider.
    CHECK(registry.default_model() == "auto");
    CHECK(registry.warnings().empty());
    // A pinned DEFAULT_MODEL whose provider is gone falls back, with a warning.
    env["DEFAULT_MODEL"] = "glm-4.6";
    const auto explicit_default = build(env);
    CHECK(explicit_default.default_model() == "kimi-k2-0905-preview");
    REQUIRE(explicit_default.warnings().size() == 1);
    CHECK(explicit_default.warnings()[0].find("DEFAULT_MODEL=glm-4.6") != std::string::npos);
  }
  SECTION("disabled wins over allowed")
  {
    auto env = keys;
    env["ALLOWED_PROVIDERS"] = "kimi,glm";
    env["DISABLED_PROVIDERS"] = "kimi";
    CHECK(build(env).configured().size() == 1);
  }
  SECTION("unknown provider names are a configuration error")
  {
    auto env = keys;
    env["ALLOWED_PROVIDERS"] = "kimi,openai";
    const auto message = config_error(env);
    CHECK(message.find("ALLOWED_PROVIDERS") != std::string::npos);
    CHECK(message.find("openai") != std::string::npos);
  }
}

TEST_CASE("*_ALLOWED_MODELS restricts the models of a provider", "[core][providers]")
{
  const auto registry = build({{"KIMI_API_KEY", "k"},
                               {"GLM_API_KEY", "g"},
                               {"KIMI_ALLOWED_MODELS", "kimi-k2, KIMI-LATEST"},
                               {"GLM_ALLOWED_MODELS", "glm-4.5-x"}});
  const auto* kimi = registry.find("kimi");
  CHECK(kimi->models.size() == 2);
  CHECK(kimi->name_count == 4); // kimi-k2-0905-preview + 2 aliases, kimi-latest
  CHECK(kimi->restriction == std::vector<std::string>{"kimi-k2-0905-preview", "kimi-latest"});
  CHECK(registry.find("glm")->name_count == 2);
  CHECK(registry.summary() == "Providers configured: KIMI, GLM; GLM models: 2; Kimi models: 4");
  CHECK(registry.resolve_model("kimi-k2-0905").model->name == "kimi-k2-0905-preview");
  CHECK(resolve_error(registry, "moonshot-v1-8k", Errc::validation_error)
            .find("KIMI_ALLOWED_MODELS") != std::string::npos);
  SECTION("a model of the wrong provider is a configuration error")
  {
    const auto message = config_error({{"GLM_ALLOWED_MODELS", "kimi-latest"}});
    CHECK(message.find("GLM_ALLOWED_MODELS") != std::string::npos);
    CHECK(message.find("kimi-latest") != std::string::npos);
  }
}

TEST_CASE("resolve_model finds the provider and reports unusable models", "[core][providers]")
{
  const auto registry = build({{"GLM_API_KEY", "g"}});
  const auto resolved = registry.resolve_model("GLM-4.5-X");
  CHECK(resolved.provider->id == "glm");
  CHECK(resolved.model->name == "glm-4.5-air");
  CHECK(resolve_error(registry, "kimi-k2", Errc::provider_unavailable).find("KIMI") !=
        std::string::npos);
  CHECK(resolve_error(registry, "glm-46", Errc::validation_error).find("glm-4.6") !=
        std::string::npos);
}

TEST_CASE("invalid numbers and URLs name the variable, the value and the range",
          "[core][providers]")
{
  auto value = GENERATE(as<std::string>{}, "0", "3601", "abc", "12s", "-1");
  CAPTURE(value);
  const auto message = config_error({{"KIMI_TIMEOUT_SECS", value}});
  CHECK(message.find("KIMI_TIMEOUT_SECS=" + value) != std::string::npos);
  CHECK(message.find("[1, 3600]") != std::string::npos);
  CHECK(config_error({{"GLM_API_URL", "ftp://x"}}).find("GLM_API_URL=ftp://x") !=
        std::string::npos);
  CHECK(config_error({{"DEFAULT_MODEL", "glm-4.5-flsh"}}).find("glm-4.5-flash") !=
        std::string::npos);
  CHECK(build({{"GLM_TIMEOUT_SECS", " 30 "}}).find("glm")->read_timeout ==
        std::chrono::seconds(30));
  CHECK(build({{"GLM_API_URL", "http://127.0.0.1:9/v4/"}}).find("glm")->base_url ==
        "http://127.0.0.1:9/v4");
}

TEST_CASE("no configuration error message contains a key", "[core][providers]")
{
  const std::string key = "sk-secret-key-value-0123456789";
  const auto message =
      config_error({{"KIMI_API_KEY", key}, {"KIMI_TIMEOUT_SECS", "x"}, {"GLM_API_KEY", key}});
  CHECK(message.find(key) == std::string::npos);
  const auto registry = build({{"KIMI_API_KEY", key}});
  CHECK(registry.summary().find(key) == std::string::npos);
}

TEST_CASE("the process registry is built exactly once however many threads race",
          "[core][providers]")
{
  // The only test that builds it, so nothing has yet.
  REQUIRE(exai::core::process_providers_build_count() == 0);
  CHECK_THROWS_AS(exai::core::process_providers(), std::logic_error);

  const Settings settings({}, {{"KIMI_API_KEY", "k"}, {"GLM_API_KEY", "g"}}, {});
  constexpr int kThreads = 16;
  std::vector<const ProviderRegistry*> seen(kThreads, nullptr);
  exai::test::race(kThreads, [&](int i) {
    seen[static_cast<std::size_t>(i)] = &exai::core::init_process_providers(settings);
  });
  CHECK(exai::core::process_providers_build_count() == 1);
  for (const auto* registry : seen) {
    CHECK(registry == seen.front());
  }
  CHECK(seen.front()->summary() ==
        "Providers configured: KIMI, GLM; GLM models: 6; Kimi models: 18");
  CHECK(&exai::core::process_providers() == seen.front());

  // The same settings reached another way are the same configuration.
  const Settings same({{"GLM_API_KEY", "g"}}, {}, {{"KIMI_API_KEY", "k"}});
  CHECK(&exai::core::init_process_providers(same) == seen.front());

  // Different settings are a programming error, not a silent no-op.
  CHECK_THROWS_WITH(exai::core::init_process_providers(Settings()),
                    Catch::Contains("already built from different settings"));
  const Settings other({}, {{"KIMI_API_KEY", "k"}, {"GLM_API_KEY", "other"}}, {});
  CHECK_THROWS_AS(exai::core::init_process_providers(other), std::logic_error);
  CHECK(exai::core::process_providers_build_count() == 1);
}
