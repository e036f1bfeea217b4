#include "core/config/price_table.hpp"
#include "core/error.hpp"
#include "core/providers/token_usage.hpp"

#include <catch2/catch.hpp>

using namespace exai::core;
using nlohmann::json;

TEST_CASE("usage: prompt, completion and cached tokens in GLM's and Kimi's shapes", "[core][usage]")
{
  const auto glm = token_usage({{"prompt_tokens", 100},
                                {"completion_tokens", 20},
                                {"prompt_tokens_details", {{"cached_tokens", 40}}}});
  CHECK(glm.prompt == 100);
  CHECK(glm.completion == 20);
  CHECK(glm.cached == 40);
  const auto kimi =
      token_usage({{"prompt_tokens", 5}, {"completion_tokens", 6}, {"cached_tokens", 3}});
  CHECK(kimi.cached == 3);
  const auto junk = token_usage({{"prompt_tokens", "many"}, {"completion_tokens", -4}});
  CHECK(junk.prompt == 0);
  CHECK(junk.completion == 0);
  CHECK(token_usage(json()).prompt == 0);
  CHECK(to_json(glm) == json{{"prompt", 100}, {"completion", 20}, {"cached", 40}});
}

TEST_CASE("usage: the meter sums per provider and model and prices what has a price",
          "[core][usage]")
{
  UsageMeter meter(parse_price_table("glm-4.5:1:2"));
  CHECK(meter.priced());
  meter.record("glm", "glm-4.5", {1000000, 500000, 10});
  meter.record("glm", "glm-4.5", {0, 500000, 0});
  meter.record("kimi", "kimi-k2-0905-preview", {7, 8, 9});
  const auto totals = meter.snapshot();
  const auto& glm = totals.at({"glm", "glm-4.5"});
  CHECK(glm.calls == 2);
  CHECK(glm.tokens.prompt == 1000000);
  CHECK(glm.tokens.completion == 1000000);
  CHECK(glm.tokens.cached == 10);
  REQUIRE(glm.cost);
  CHECK(*glm.cost == Approx(3.0));
  CHECK_FALSE(totals.at({"kimi", "kimi-k2-0905-preview"}).cost);
  CHECK_FALSE(UsageMeter().priced());
}

TEST_CASE("prices: EXAI_PRICES entries are model:in:out; bad entries name the rule",
          "[core][usage]")
{
  const auto table = parse_price_table(" glm-4.5:0.6:2.2 , kimi-k2:0.6:2.5,");
  REQUIRE(table.size() == 2);
  CHECK(table.at("glm-4.5").input_per_million == Approx(0.6));
  CHECK(table.at("kimi-k2").output_per_million == Approx(2.5));
  CHECK(parse_price_table("").empty());
  const auto message = [](std::string_view text) {
    try {
      parse_price_table(text);
    } catch (const Error& e) {
      CHECK(e.code() == Errc::config_invalid);
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK_THAT(message("glm-4.5:1"),
             Catch::Contains("EXAI_PRICES") && Catch::Contains("three fields"));
  CHECK_THAT(message("glm-4.5:x:1"), Catch::Contains("input price 'x'"));
  CHECK_THAT(message("glm-4.5:1:-2"), Catch::Contains("output price '-2'"));
  CHECK_THAT(message("glm-4.5:1:nan"), Catch::Contains("non-negative number"));
  CHECK_THAT(message(":1:2"), Catch::Contains("model name is empty"));
  CHECK_THAT(message("a:1:2,a:1:3"), Catch::Contains("priced twice"));
}
