#include "core/error.hpp"
#include "core/providers/model_routing.hpp"
#include "core/providers/providers.hpp"

#include <catch2/catch.hpp>

using namespace exai::core;

namespace {

ProviderRegistry
build(Settings::Map environment)
{
  return ProviderRegistry::build(Settings({}, std::move(environment), {}));
}

const Settings::Map kBoth = {{"KIMI_API_KEY", "k"}, {"GLM_API_KEY", "g"}};

Error
error_of(const ProviderRegistry& registry, std::string_view model, RouteNeeds needs)
{
  try {
    (void)choose_model(registry, model, needs);
  } catch (const Error& e) {
    return e;
  }
  FAIL("expected an Error");
  return Error(Errc::internal_error, "unreachable");
}

} // namespace

TEST_CASE("auto picks per class and names the other provider's equivalent", "[core][routing]")
{
  const auto registry = build(kBoth);
  const auto fast = choose_model(registry, "auto", {ModelClass::fast});
  CHECK(fast.automatic);
  CHECK(fast.primary.provider == "glm");
  CHECK(fast.primary.model == "glm-4.5-flash");
  REQUIRE(fast.fallback);
  CHECK(fast.fallback->provider == "kimi");
  CHECK(fast.fallback->model == "kimi-k2-turbo-preview");
  CHECK_THAT(fast.reason, Catch::Contains("GLM_SPEED_MODEL=glm-4.5-flash"));

  const auto deep = choose_model(registry, "AUTO", {ModelClass::deep});
  CHECK(deep.primary.model == "kimi-thinking-preview");
  CHECK(deep.fallback->model == "glm-4.6");

  const auto kimi = choose_model(registry, "auto", {ModelClass::kimi});
  CHECK(kimi.primary.model == "kimi-k2-0905-preview");
  CHECK_FALSE(kimi.fallback);

  // Thinking asked of a fast tool takes the deep models.
  const auto thinking = choose_model(registry, "auto", {ModelClass::fast, false, true});
  CHECK(thinking.primary.model == "kimi-thinking-preview");
}

TEST_CASE("an empty model means DEFAULT_MODEL, which is auto unless set", "[core][routing]")
{
  CHECK(choose_model(build(kBoth), "", {ModelClass::fast}).automatic);
  auto env = kBoth;
  env["DEFAULT_MODEL"] = "kimi-k2";
  const auto pinned = choose_model(build(env), "", {ModelClass::fast});
  CHECK_FALSE(pinned.automatic);
  CHECK(pinned.primary.model == "kimi-k2-0905-preview");
  CHECK_FALSE(pinned.fallback);
  env["DEFAULT_MODEL"] = "Auto";
  CHECK(build(env).default_model() == "auto");
}

TEST_CASE("auto uses the configured provider when the preferred one has no key", "[core][routing]")
{
  const auto kimi_only = build({{"KIMI_API_KEY", "k"}});
  const auto fast = choose_model(kimi_only, "auto", {ModelClass::fast});
  CHECK(fast.primary.model == "kimi-k2-turbo-preview");
  CHECK_FALSE(fast.fallback);
  CHECK_THAT(fast.reason, Catch::Contains("no fallback"));

  const auto glm_only = build({{"GLM_API_KEY", "g"}});
  CHECK(choose_model(glm_only, "auto", {ModelClass::deep}).primary.model == "glm-4.6");
  const auto none = error_of(glm_only, "auto", {ModelClass::kimi});
  CHECK(none.code() == Errc::provider_unavailable);
  CHECK_THAT(none.what(), Catch::Contains("no API key"));
}

TEST_CASE("auto honours the allow lists and the routing variables", "[core][routing]")
{
  auto env = kBoth;
  env["KIMI_ALLOWED_MODELS"] = "kimi-k2-0905-preview";
  env["GLM_SPEED_MODEL"] = "glm-4.5-air";
  const auto registry = build(env);
  CHECK(choose_model(registry, "auto", {ModelClass::fast}).primary.model == "glm-4.5-air");
  const auto deep = choose_model(registry, "auto", {ModelClass::deep});
  // kimi-thinking-preview is not allowed: the allowed Kimi model stands in.
  CHECK(deep.primary.model == "kimi-k2-0905-preview");
  CHECK_THAT(deep.reason, Catch::Contains("allowed by the model list"));

  env = kBoth;
  env["DISABLED_PROVIDERS"] = "glm";
  const auto no_glm = choose_model(build(env), "auto", {ModelClass::fast});
  CHECK(no_glm.primary.provider == "kimi");
}

TEST_CASE("images steer auto to a vision model and refuse a pinned text model", "[core][routing]")
{
  const auto registry = build(kBoth);
  const auto vision = choose_model(registry, "auto", {ModelClass::fast, true});
  CHECK(vision.primary.model == "glm-4.5v");
  REQUIRE(vision.fallback);
  const auto* fallback = registry.catalog().find(vision.fallback->model);
  CHECK(fallback->capabilities.images);

  const auto refused = error_of(registry, "glm-4.5-flash", {ModelClass::fast, true});
  CHECK(refused.code() == Errc::validation_error);
  CHECK_THAT(refused.what(), Catch::Contains("cannot take images"));
  CHECK_THAT(refused.what(), Catch::Contains("glm-4.5v"));
  CHECK(choose_model(registry, "kimi-latest", {ModelClass::fast, true}).primary.model ==
        "kimi-latest");
}

TEST_CASE("routing variables must name a catalog model of their provider", "[core][routing]")
{
  for (const auto& [variable, value] :
       std::vector<std::pair<std::string, std::string>>{{"GLM_SPEED_MODEL", "kimi-k2"},
                                                        {"KIMI_QUALITY_MODEL", "nope"},
                                                        {"KIMI_DEFAULT_MODEL", "glm-4.6"}}) {
    CAPTURE(variable, value);
    auto env = kBoth;
    env[variable] = value;
    try {
      (void)build(env);
      FAIL("expected config_invalid");
    } catch (const Error& e) {
      CHECK(e.code() == Errc::config_invalid);
      CHECK_THAT(e.what(), Catch::Contains(variable + "=" + value));
    }
  }
  auto env = kBoth;
  env["DEFAULT_MODEL"] = "gpt-9";
  CHECK_THROWS_WITH(build(env), Catch::Contains("expected auto or a model"));
}
