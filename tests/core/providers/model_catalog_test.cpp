#include "core/error.hpp"
#include "core/providers/model_catalog.hpp"

#include <catch2/catch.hpp>

#include <set>
#include <string>

using exai::core::Errc;
using exai::core::Error;
using exai::core::ModelCatalog;

TEST_CASE("the catalog has 14 Kimi models with 18 names and 5 GLM models with 6 names",
          "[core][model_catalog]")
{
  const auto& catalog = ModelCatalog::builtin();
  int kimi = 0;
  int glm = 0;
  std::set<std::string> names;
  for (const auto& info : catalog.models()) {
    (info.provider_id == "kimi" ? kimi : glm) += 1;
    CHECK(info.context_window > 0);
    CHECK(info.max_output_tokens > 0);
    CHECK(info.max_output_tokens <= info.context_window);
    CHECK(names.insert(info.name).second);
    for (const auto& alias : info.aliases) {
      CHECK(names.insert(alias).second);
    }
  }
  CHECK(kimi == 14);
  CHECK(glm == 5);
  CHECK(catalog.name_count("kimi") == 18);
  CHECK(catalog.name_count("glm") == 6);
}

TEST_CASE("aliases and any letter case resolve to the canonical model", "[core][model_catalog]")
{
  const auto& catalog = ModelCatalog::builtin();
  CHECK(catalog.resolve("kimi-k2").name == "kimi-k2-0905-preview");
  CHECK(catalog.resolve("KIMI-K2-0905").name == "kimi-k2-0905-preview");
  CHECK(catalog.resolve("kimi-k2-0711").name == "kimi-k2-0711-preview");
  CHECK(catalog.resolve("Kimi-K2-Turbo").name == "kimi-k2-turbo-preview");
  CHECK(catalog.resolve("glm-4.5-x").name == "glm-4.5-air");
  CHECK(catalog.resolve("  GLM-4.5-Flash ").name == "glm-4.5-flash");
  CHECK(catalog.resolve("glm-4.5v").provider_id == "glm");
  CHECK(catalog.resolve("moonshot-v1-128k-vision-preview").capabilities.images);
  CHECK(catalog.resolve("kimi-thinking-preview").capabilities.thinking);
  CHECK(catalog.resolve("glm-4.6").capabilities.function_calling);
}

TEST_CASE("an unknown model is an error that lists close matches", "[core][model_catalog]")
{
  const auto& catalog = ModelCatalog::builtin();
  CHECK(catalog.find("gpt-4") == nullptr);
  try {
    (void)catalog.resolve("glm-4.5-flsh");
    FAIL("expected an error");
  } catch (const Error& e) {
    CHECK(e.code() == Errc::validation_error);
    const std::string text = e.what();
    CHECK(text.find("unknown model 'glm-4.5-flsh'") != std::string::npos);
    CHECK(text.find("glm-4.5-flash") != std::string::npos);
  }
  const auto matches = catalog.close_matches("kimi-k2-09");
  REQUIRE_FALSE(matches.empty());
  CHECK(std::find(matches.begin(), matches.end(), "kimi-k2-0905") != matches.end());
  CHECK(catalog.close_matches("completely-unrelated-name-xyz").empty());
}

TEST_CASE("edit distance counts insertions, deletions and substitutions", "[core][model_catalog]")
{
  CHECK(exai::core::edit_distance("", "") == 0);
  CHECK(exai::core::edit_distance("abc", "abc") == 0);
  CHECK(exai::core::edit_distance("abc", "abd") == 1);
  CHECK(exai::core::edit_distance("abc", "ab") == 1);
  CHECK(exai::core::edit_distance("kitten", "sitting") == 3);
}
