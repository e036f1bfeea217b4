// planner: steps, revisions and branches, and no model call.

#include "core/tools/prompts.hpp"
#include "tests/core/tools/workflow/workflow_bench.hpp"

#include <catch2/catch.hpp>

using namespace exai::core;
using namespace exai::core::workflow_test;

TEST_CASE("planner's schema has its own fields and no model", "[core][workflow]")
{
  const auto providers =
      ProviderRegistry::build(Settings({}, {{"KIMI_API_KEY", "k"}, {"GLM_API_KEY", "g"}}, {}));
  const Tool* planner = process_tools().find("planner");
  REQUIRE(planner != nullptr);
  const json schema = input_schema(planner->spec(), providers);
  CHECK(schema["additionalProperties"] == false);
  CHECK_FALSE(schema["properties"].contains("model"));
  CHECK_FALSE(schema["properties"].contains("findings"));
  for (const char* field : {"is_step_revision",
                            "revises_step_number",
                            "is_branch_point",
                            "branch_from_step",
                            "branch_id"}) {
    CAPTURE(field);
    CHECK(schema["properties"].contains(field));
  }
  CHECK(schema["required"] ==
        json::array({"step", "step_number", "total_steps", "next_step_required"}));
  CHECK_FALSE(planner->reusable());
}

TEST_CASE("planner records steps, revisions and branches without a model", "[core][workflow]")
{
  Bench b;
  auto first = b.call("planner", plan_step(1, 4, true, "Pick the storage"));
  REQUIRE_FALSE(first.error);
  CHECK(first.plan.provider.empty());
  CHECK(first.reply["status"] == "pause_for_planner");
  const std::string id = first.reply["continuation_id"];
  REQUIRE_FALSE(
      b.call("planner", plan_step(2, 4, true, "Use SQLite", {{"continuation_id", id}})).error);
  auto revision = b.call(
      "planner",
      plan_step(3,
                4,
                true,
                "Use PostgreSQL",
                {{"continuation_id", id}, {"is_step_revision", true}, {"revises_step_number", 2}}));
  REQUIRE_FALSE(revision.error);
  auto bad_revision = b.call(
      "planner",
      plan_step(4,
                4,
                true,
                "x",
                {{"continuation_id", id}, {"is_step_revision", true}, {"revises_step_number", 9}}));
  CHECK(field_of(bad_revision) == "revises_step_number");
  auto no_id = b.call(
      "planner",
      plan_step(4,
                4,
                true,
                "x",
                {{"continuation_id", id}, {"is_branch_point", true}, {"branch_from_step", 1}}));
  CHECK(field_of(no_id) == "branch_id");
  auto branch = b.call("planner",
                       plan_step(4,
                                 5,
                                 true,
                                 "Keep files instead",
                                 {{"continuation_id", id},
                                  {"is_branch_point", true},
                                  {"branch_from_step", 1},
                                  {"branch_id", "files"}}));
  REQUIRE_FALSE(branch.error);
  CHECK(branch.reply["plan_state"]["branches"] == json::array({"files"}));
  auto unknown_branch = b.call(
      "planner", plan_step(5, 5, false, "x", {{"continuation_id", id}, {"branch_id", "nope"}}));
  CHECK(field_of(unknown_branch) == "branch_id");
  auto done =
      b.call("planner", plan_step(5, 5, false, "Migrate the data", {{"continuation_id", id}}));
  REQUIRE_FALSE(done.error);
  CHECK(done.reply["status"] == "planner_complete");
  const std::string text = done.reply["content"];
  CHECK(text.find("2. Use PostgreSQL (revised in step 3)") != std::string::npos);
  CHECK(text.find("Use SQLite") == std::string::npos);
  CHECK(text.find("### Branch files (after step 1)") != std::string::npos);
  CHECK(text.find("4. Keep files instead") != std::string::npos);
  CHECK(text.find("5. Migrate the data") != std::string::npos);
  CHECK(b.chat.requests.empty());

  auto foreign =
      b.call("planner",
             plan_step(2,
                       2,
                       false,
                       "x",
                       {{"continuation_id",
                         b.call("debug", step(1, 2, true, "x")).reply["continuation_id"]}}));
  CHECK(field_of(foreign) == "continuation_id");
}
