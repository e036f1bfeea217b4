// consensus: one model per step with its stance; bad model lists refused;
// a failing model reported, not fatal.

#include "core/tools/prompts.hpp"
#include "tests/core/tools/workflow/workflow_bench.hpp"

#include <catch2/catch.hpp>

using namespace exai::core;
using exai::core::workflow_test::Bench;
using exai::core::workflow_test::field_of;
using exai::core::workflow_test::step;
using nlohmann::json;

TEST_CASE("consensus consults one model per step, each with its stance",
          "[core][workflow][consensus]")
{
  Bench b;
  const json models = {{{"model", "glm-4.5-flash"}, {"stance", "for"}},
                       {{"model", "kimi-k2"}, {"stance", "against"}}};
  auto one = b.call("consensus",
                    {{"step", "Should we cache results?"},
                     {"step_number", 1},
                     {"total_steps", 2},
                     {"next_step_required", true},
                     {"findings", "caching saves upstream calls"},
                     {"models", models}});
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
  auto two = b.call("consensus",
                    {{"step", "next model"},
                     {"step_number", 2},
                     {"total_steps", 2},
                     {"next_step_required", false},
                     {"findings", "glm agrees"},
                     {"continuation_id", id}});
  REQUIRE_FALSE(two.error);
  CHECK(two.plan.provider == "kimi");
  CHECK(two.reply["status"] == "consensus_complete");
  CHECK(two.reply["accumulated_responses"].size() == 2);
  CHECK(two.reply["agent_analysis"] == "caching saves upstream calls");
  REQUIRE(b.chat.requests.size() == 2);
  CHECK(b.chat.providers[1] == "kimi");
  CHECK(b.chat.requests[1].messages[0].content.find(
            std::string(prompts::get("consensus_against"))) != std::string::npos);

  auto after = b.call("consensus",
                      {{"step", "more"},
                       {"step_number", 3},
                       {"total_steps", 3},
                       {"next_step_required", false},
                       {"continuation_id", id}});
  CHECK(field_of(after) == "continuation_id");
}

TEST_CASE("consensus refuses zero, duplicate and unknown models", "[core][workflow][consensus]")
{
  Bench b;
  json args = {{"step", "p"},
               {"step_number", 1},
               {"total_steps", 2},
               {"next_step_required", true},
               {"findings", "mine"}};
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
  auto one = b.call("consensus",
                    {{"step", "p"},
                     {"step_number", 1},
                     {"total_steps", 1},
                     {"next_step_required", false},
                     {"findings", "mine"},
                     {"models", {{{"model", "glm-4.5-flash"}}}}});
  REQUIRE_FALSE(one.error);
  CHECK(one.reply["status"] == "consensus_complete");
  CHECK(one.reply["model_response"]["status"] == "error");
  CHECK(one.reply["model_response"]["error"]["code"] == "PROVIDER_ERROR");
}
