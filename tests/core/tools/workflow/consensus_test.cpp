// consensus: one model per step with its stance; bad model lists refused;
// a failing model reported, not fatal.

#include "core/tools/prompts.hpp"
#include "tests/core/tools/workflow/workflow_bench.hpp"

#include <catch2/catch.hpp>

using namespace exai::core;
using namespace exai::core::workflow_test;

TEST_CASE("consensus consults one model per step, each with its stance",
          "[core][workflow][consensus]")
{
  Bench b;
  const json models = {{{"model", "glm-4.5-flash"}, {"stance", "for"}},
                       {{"model", "kimi-k2"}, {"stance", "against"}}};
  auto one = b.call("consensus",
                    step(1,
                         2,
                         true,
                         "caching saves upstream calls",
                         {{"step", "Should we cache results?"}, {"models", models}}));
  REQUIRE_FALSE(one.error);
  CHECK(one.plan.provider == "glm");
  CHECK(one.reply["status"] == "pause_for_consensus");
  CHECK(one.reply["model_consulted"] == "glm-4.5-flash");
  CHECK(one.reply["model_response"]["status"] == "success");
  CHECK(one.reply["next_model"]["model"] == "kimi-k2-0905-preview");
  CHECK(one.reply["next_model"]["stance"] == "against");
  CHECK(one.reply["models_remaining"] == 1);
  REQUIRE(b.chat.requests.size() == 1);
  CHECK(b.chat.providers[0] == "glm");
  CHECK(b.chat.requests[0].messages[0].content ==
        std::string(prompts::get("consensus")) + "\n" + std::string(prompts::get("consensus_for")));
  CHECK(b.chat.requests[0].messages[1].content.find("Should we cache results?") !=
        std::string::npos);
  // Each model answers independently: the agent's analysis is not sent.
  CHECK(b.chat.requests[0].messages[1].content.find("caching saves") == std::string::npos);

  const std::string id = one.reply["continuation_id"];
  auto two =
      b.call("consensus",
             step(2, 2, false, "glm agrees", {{"step", "next model"}, {"continuation_id", id}}));
  REQUIRE_FALSE(two.error);
  CHECK(two.plan.provider == "kimi");
  CHECK(two.reply["status"] == "consensus_complete");
  CHECK(two.reply["accumulated_responses"].size() == 2);
  CHECK(two.reply["agent_analysis"] == "caching saves upstream calls");
  REQUIRE(b.chat.requests.size() == 2);
  CHECK(b.chat.providers[1] == "kimi");
  CHECK(b.chat.requests[1].messages[0].content.find(
            std::string(prompts::get("consensus_against"))) != std::string::npos);

  auto after = b.call("consensus", plan_step(3, 3, false, "more", {{"continuation_id", id}}));
  CHECK(field_of(after) == "continuation_id");
}

TEST_CASE("consensus refuses zero, duplicate and unknown models", "[core][workflow][consensus]")
{
  Bench b;
  json args = step(1, 2, true, "mine", {{"step", "p"}});
  args["models"] = json::array();
  CHECK(field_of(b.call("consensus", args)) == "models");
  args["models"] = {{{"model", "kimi-k2"}, {"stance", "for"}},
                    {{"model", "kimi-k2-0905-preview"}, {"stance", "for"}}};
  auto duplicate = b.call("consensus", args);
  CHECK(field_of(duplicate) == "models[1]");
  args["models"] = {{{"model", "gpt-4"}}};
  CHECK(field_of(b.call("consensus", args)) == "models[0].model");
  args["models"] = {{{"model", "kimi-k2"}}};
  args.erase("findings");
  CHECK(field_of(b.call("consensus", args)) == "findings");
  CHECK(b.chat.requests.empty());
}

TEST_CASE("a consensus model that fails is reported, not fatal", "[core][workflow][consensus]")
{
  Bench b;
  b.chat.fail = true;
  auto one = b.call(
      "consensus",
      step(1, 1, false, "mine", {{"step", "p"}, {"models", {{{"model", "glm-4.5-flash"}}}}}));
  REQUIRE_FALSE(one.error);
  CHECK(one.reply["status"] == "consensus_complete");
  CHECK(one.reply["model_response"]["status"] == "error");
  CHECK(one.reply["model_response"]["error"]["code"] == "PROVIDER_ERROR");
}

TEST_CASE("consult_all_at_once asks every model concurrently within each provider's capacity",
          "[core][workflow][consensus]")
{
  Bench b;
  const json models = {{{"model", "glm-4.5-flash"}, {"stance", "for"}},
                       {{"model", "glm-4.5-flash"}, {"stance", "against"}},
                       {{"model", "glm-4.5-flash"}, {"stance", "neutral"}},
                       {{"model", "kimi-k2"}, {"stance", "neutral"}}};
  const json args = step(
      1,
      1,
      false,
      "sharding spreads the lock",
      {{"step", "Should we shard the store?"}, {"models", models}, {"consult_all_at_once", true}});
  SECTION("capacity for everyone: all four at once")
  {
    b.chat.gather = 4;
    auto all = b.call("consensus", args);
    REQUIRE_FALSE(all.error);
    CHECK(b.chat.peak == 4);
    CHECK(all.reply["status"] == "consensus_complete");
    REQUIRE(all.reply["accumulated_responses"].size() == 4);
    for (std::size_t i = 0; i < 4; ++i) {
      CHECK(all.reply["accumulated_responses"][i]["status"] == "success");
      CHECK(all.reply["accumulated_responses"][i]["stance"] == models[i]["stance"]);
    }
    CHECK(all.reply["content"].get<std::string>().find("(against)") != std::string::npos);
    CHECK(b.chat.requests.size() == 4);
  }
  SECTION("GLM capacity 2: never more than 2 GLM requests at once, every model answered")
  {
    b.capacities["glm"] = 2;
    b.chat.gather = 3; // two GLM lanes and one Kimi lane meet; the third GLM model waits
    auto all = b.call("consensus", args);
    REQUIRE_FALSE(all.error);
    CHECK(b.chat.peak == 3);
    CHECK(b.chat.peak_by_provider["glm"] == 2);
    CHECK(b.limiter("glm").stats().in_use == 0); // every extra permit is back
    int glm_answers = 0;
    for (const auto& response : all.reply["accumulated_responses"]) {
      CHECK(response["status"] == "success");
      glm_answers += response["provider"] == "glm" ? 1 : 0;
    }
    CHECK(glm_answers == 3);
    CHECK(b.chat.requests.size() == 4);
  }
  SECTION("a provider without free capacity is reported for its models, not fatal")
  {
    b.capacities["kimi"] = 1;
    auto held = b.limiter("kimi").try_acquire(); // someone else holds Kimi's only permit
    REQUIRE(held);
    b.config.acquire_timeout = std::chrono::milliseconds(50);
    auto all = b.call("consensus", args);
    REQUIRE_FALSE(all.error);
    const json& kimi = all.reply["accumulated_responses"][3];
    CHECK(kimi["status"] == "error");
    CHECK(kimi["error"]["code"] == "OVER_CAPACITY");
    CHECK(all.reply["accumulated_responses"][0]["status"] == "success");
    CHECK(b.chat.requests.size() == 3);
  }
  SECTION("only step 1 may ask for it")
  {
    json first = args;
    first["consult_all_at_once"] = false;
    first["total_steps"] = 4;
    auto one = b.call("consensus", first);
    REQUIRE_FALSE(one.error);
    CHECK(one.reply["status"] == "pause_for_consensus");
    const json later = plan_step(
        2,
        4,
        true,
        "the rest at once",
        {{"continuation_id", one.reply["continuation_id"]}, {"consult_all_at_once", true}});
    CHECK(field_of(b.call("consensus", later)) == "consult_all_at_once");
  }
}
