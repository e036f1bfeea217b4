// The workflow engine behind analyze, codereview, debug, ...: step state,
// numbering rules, backtracking, the expert rule and the one expert call.

#include "core/tools/prompts.hpp"
#include "tests/core/tools/workflow/workflow_bench.hpp"

#include <catch2/catch.hpp>

#include <algorithm>

using namespace exai::core;
using namespace exai::core::workflow_test;

TEST_CASE("every workflow tool is registered with an exact step schema", "[core][workflow]")
{
  const auto providers =
      ProviderRegistry::build(Settings({}, {{"KIMI_API_KEY", "k"}, {"GLM_API_KEY", "g"}}, {}));
  for (const char* name : {"analyze",
                           "codereview",
                           "debug",
                           "docgen",
                           "precommit",
                           "refactor",
                           "secaudit",
                           "testgen",
                           "thinkdeep",
                           "tracer"}) {
    CAPTURE(name);
    const Tool* tool = process_tools().find(name);
    REQUIRE(tool != nullptr);
    const json schema = input_schema(tool->spec(), providers);
    CHECK(schema["additionalProperties"] == false);
    for (const char* field : {"step",
                              "step_number",
                              "total_steps",
                              "next_step_required",
                              "findings",
                              "files_checked",
                              "relevant_files",
                              "relevant_context",
                              "issues_found",
                              "confidence",
                              "backtrack_from_step",
                              "images",
                              "use_assistant_model",
                              "continuation_id",
                              "model",
                              "temperature",
                              "thinking_mode"}) {
      CAPTURE(field);
      CHECK(schema["properties"].contains(field));
    }
    CHECK(schema["properties"]["step_number"]["minimum"] == 1);
    CHECK(schema["properties"]["confidence"]["enum"].size() == 7);
    CHECK(schema["properties"]["issues_found"]["items"]["required"] ==
          json::array({"severity", "description"}));
    for (const char* field :
         {"step", "step_number", "total_steps", "next_step_required", "findings"}) {
      CHECK(std::find(schema["required"].begin(), schema["required"].end(), field) !=
            schema["required"].end());
    }
    CHECK_FALSE(tool->reusable());
    CHECK_FALSE(prompts::get(name).empty());
  }
  const json review = input_schema(process_tools().find("codereview")->spec(), providers);
  CHECK(review["properties"]["review_type"]["enum"] ==
        json::array({"full", "security", "performance", "quick"}));
  CHECK(review["properties"]["severity_filter"]["default"] == "all");
  const json tracer = input_schema(process_tools().find("tracer")->spec(), providers);
  CHECK(tracer["properties"]["trace_mode"]["enum"] == json::array({"precision", "dependencies"}));
  CHECK_FALSE(tracer["properties"].contains("hypothesis"));
}

TEST_CASE("intermediate steps record state and call no model", "[core][workflow]")
{
  Bench b;
  const std::string a = b.file("a.cpp", "int a;\n");
  auto one = b.call("analyze", step(1, 3, true, "mapped the modules", {{"relevant_files", {a}}}));
  REQUIRE_FALSE(one.error);
  CHECK(one.plan.provider.empty()); // no provider permit for a step without a model call
  CHECK(one.reply["status"] == "pause_for_analyze");
  CHECK(one.reply["next_step_required"] == true);
  CHECK(one.reply["next_step_number"] == 2);
  CHECK_FALSE(one.reply["required_actions"].empty());
  const std::string id = one.reply["continuation_id"];
  CHECK(one.reply["continuation_offer"]["continuation_id"] == id);
  CHECK(one.reply["content"].get<std::string>().find(id) != std::string::npos);

  auto two = b.call("analyze",
                    step(2,
                         3,
                         true,
                         "found a cycle",
                         {{"continuation_id", id},
                          {"relevant_files", {a}},
                          {"files_checked", {a, "/x/b.cpp"}},
                          {"issues_found", {{{"severity", "high"}, {"description", "cycle"}}}},
                          {"confidence", "medium"}}));
  REQUIRE_FALSE(two.error);
  CHECK(two.plan.conversation_id == id); // steps of one workflow run one at a time
  CHECK(two.reply["continuation_id"] == id);
  const json& state = two.reply["workflow_state"];
  CHECK(state["steps_recorded"] == json::array({1, 2}));
  CHECK(state["relevant_files"] == json::array({a})); // merged without duplicates
  CHECK(state["files_checked"].size() == 2);
  CHECK(state["issues_found"].size() == 1);
  CHECK(state["confidence"] == "medium");
  CHECK(b.chat.requests.empty());
}

TEST_CASE("step numbers must follow the workflow", "[core][workflow]")
{
  Bench b;
  SECTION("a later step without continuation_id")
  {
    auto out = b.call("debug", step(2, 3, true, "x"));
    CHECK(invalid_field(out) == "step_number");
  }
  SECTION("step_number beyond total_steps")
  {
    auto out = b.call("debug", step(4, 3, true, "x"));
    CHECK(invalid_field(out) == "step_number");
    CHECK(out.details["rule"].get<std::string>().find("total_steps") != std::string::npos);
  }
  SECTION("a skipped or repeated step")
  {
    const std::string id = b.call("debug", step(1, 4, true, "x")).reply["continuation_id"];
    auto skipped = b.call("debug", step(3, 4, true, "x", {{"continuation_id", id}}));
    CHECK(invalid_field(skipped) == "step_number");
    CHECK(skipped.details["rule"].get<std::string>().find("must be 2") != std::string::npos);
    auto repeated = b.call("debug", step(1, 4, true, "x", {{"continuation_id", id}}));
    CHECK(repeated.error == Errc::validation_error);
    // A refused step changes nothing: step 2 is still next.
    CHECK_FALSE(b.call("debug", step(2, 4, true, "x", {{"continuation_id", id}})).error);
  }
  SECTION("a missing required field or a bad confidence")
  {
    json args = step(1, 2, true, "x");
    args.erase("findings");
    auto out = b.call("debug", args);
    CHECK(invalid_field(out) == "findings");
    auto bad = b.call("debug", step(1, 2, true, "x", {{"confidence", "sure"}}));
    CHECK(field_of(bad) == "confidence");
    auto zero = b.call("debug", step(0, 2, true, "x"));
    CHECK(field_of(zero) == "step_number");
  }
  SECTION("step 1 of codereview needs relevant_files")
  {
    auto out = b.call("codereview", step(1, 2, true, "x"));
    CHECK(invalid_field(out) == "relevant_files");
  }
  SECTION("a relative relevant_files path is refused at the step that names it")
  {
    auto out = b.call("debug", step(1, 2, true, "x", {{"relevant_files", {"src/a.cpp"}}}));
    CHECK(invalid_field(out) == "relevant_files[0]");
  }
  SECTION("tracer needs its mode and target")
  {
    auto out = b.call("tracer", step(1, 2, true, "x"));
    CHECK(invalid_field(out) == "trace_mode");
  }
}

TEST_CASE("a continuation_id must belong to a workflow of the same tool", "[core][workflow]")
{
  Bench b;
  const std::string debug_id = b.call("debug", step(1, 3, true, "x")).reply["continuation_id"];
  auto other =
      b.call("analyze",
             step(2, 3, true, "x", {{"continuation_id", debug_id}, {"relevant_files", {"/a"}}}));
  CHECK(invalid_field(other) == "continuation_id");
  CHECK(other.details["rule"].get<std::string>().find("debug") != std::string::npos);

  const auto chat_thread =
      b.conversations.record_turn("",
                                  ChatMessage("user", "hi"),
                                  ChatMessage("assistant", "yo"),
                                  TurnInfo{"chat", "glm", "glm-4.5-flash", {}});
  auto chat = b.call("debug", step(2, 3, true, "x", {{"continuation_id", chat_thread.first}}));
  CHECK(field_of(chat) == "continuation_id");

  auto unknown = b.call("debug", step(2, 3, true, "x", {{"continuation_id", "nope"}}));
  CHECK(invalid_field(unknown) == "continuation_id");
}

TEST_CASE("backtracking discards the later steps", "[core][workflow]")
{
  Bench b;
  const std::string id =
      b.call("thinkdeep", step(1, 4, true, "first idea")).reply["continuation_id"];
  REQUIRE_FALSE(
      b.call("thinkdeep", step(2, 4, true, "dead end A", {{"continuation_id", id}})).error);
  REQUIRE_FALSE(
      b.call("thinkdeep", step(3, 4, true, "dead end B", {{"continuation_id", id}})).error);

  auto beyond = b.call(
      "thinkdeep", step(4, 4, true, "x", {{"continuation_id", id}, {"backtrack_from_step", 4}}));
  CHECK(invalid_field(beyond) == "backtrack_from_step");

  auto back = b.call(
      "thinkdeep",
      step(2, 4, true, "better path", {{"continuation_id", id}, {"backtrack_from_step", 2}}));
  REQUIRE_FALSE(back.error);
  CHECK(back.reply["workflow_state"]["steps_recorded"] == json::array({1, 2}));
  CHECK(back.reply["workflow_state"]["backtracks"] == 1);

  auto last = b.call("thinkdeep", step(3, 3, false, "conclusion", {{"continuation_id", id}}));
  REQUIRE_FALSE(last.error);
  REQUIRE(b.chat.requests.size() == 1);
  const std::string brief = b.chat.requests[0].messages.at(1).content;
  CHECK(brief.find("first idea") != std::string::npos);
  CHECK(brief.find("better path") != std::string::npos);
  CHECK(brief.find("conclusion") != std::string::npos);
  CHECK(brief.find("dead end") == std::string::npos);
}

TEST_CASE("the final step makes one expert call with the tool's prompt, findings and files",
          "[core][workflow]")
{
  Bench b;
  const std::string code = b.file("cache.cpp", "int cache_size = 0;\nvoid evict();\n");
  const std::string id = b.call("codereview",
                                step(1,
                                     2,
                                     true,
                                     "read the cache",
                                     {{"relevant_files", {code}}, {"review_type", "security"}}))
                             .reply["continuation_id"];
  auto last = b.call(
      "codereview",
      step(2,
           2,
           false,
           "eviction races with lookup",
           {{"continuation_id", id},
            {"issues_found", {{{"severity", "high"}, {"description", "data race in evict"}}}},
            {"confidence", "high"}}));
  REQUIRE_FALSE(last.error);
  CHECK(last.plan.provider == "kimi"); // deep class under auto
  CHECK(last.plan.model == "kimi-thinking-preview");
  REQUIRE(b.chat.requests.size() == 1);
  const ChatRequest& request = b.chat.requests[0];
  REQUIRE(request.messages.size() == 2);
  CHECK(request.messages[0].role == "system");
  CHECK(request.messages[0].content == prompts::get("codereview"));
  const std::string& brief = request.messages[1].content;
  CHECK(brief.find("read the cache") != std::string::npos);
  CHECK(brief.find("eviction races with lookup") != std::string::npos);
  CHECK(brief.find("data race in evict") != std::string::npos);
  CHECK(brief.find("review_type: security") != std::string::npos);
  CHECK(brief.find("1│ int cache_size = 0;") != std::string::npos);
  CHECK(request.temperature == 0.2);

  CHECK(last.reply["status"] == "codereview_complete");
  CHECK(last.reply["content"] == "expert says: looks fine");
  CHECK(last.reply["expert_analysis"]["status"] == "analysis_complete");
  CHECK(last.reply["expert_analysis"]["content"] == "expert says: looks fine");
  CHECK(last.reply["metadata"]["model_used"] == "kimi-thinking-preview");
  CHECK(last.reply["metadata"]["files"]["embedded"].size() == 1);
  CHECK(last.reply["continuation_id"] == id);
  REQUIRE_FALSE(b.progress.empty());
  CHECK(b.progress[0].rfind("calling_expert_analysis", 0) == 0);
  // The exchange is a turn of the thread: chat can continue it.
  const auto thread = b.conversations.find(id);
  REQUIRE(thread);
  CHECK(thread->turns == 1);
}

TEST_CASE("use_assistant_model false and certain confidence finish without a model",
          "[core][workflow]")
{
  Bench b;
  const std::string a = b.file("a.py", "x = 1\n");
  auto off =
      b.call("analyze",
             step(1, 1, false, "done", {{"relevant_files", {a}}, {"use_assistant_model", false}}));
  REQUIRE_FALSE(off.error);
  CHECK(off.plan.provider.empty());
  CHECK(off.reply["status"] == "local_work_complete");
  CHECK(off.reply["expert_analysis"]["status"] == "skipped");

  auto certain = b.call("debug", step(1, 1, false, "found it", {{"confidence", "certain"}}));
  CHECK(certain.reply["status"] == "local_work_complete");

  // refactor skips the expert from almost_certain on; the others only at certain.
  auto refactor =
      b.call("refactor",
             step(1, 1, false, "x", {{"relevant_files", {a}}, {"confidence", "almost_certain"}}));
  CHECK(refactor.reply["status"] == "local_work_complete");
  CHECK(b.chat.requests.empty());
  auto debug = b.call("debug", step(1, 1, false, "x", {{"confidence", "almost_certain"}}));
  CHECK(debug.reply["status"] == "debug_complete");
  CHECK(b.chat.requests.size() == 1);
}

TEST_CASE("a failed expert call keeps the state so the final step can be retried",
          "[core][workflow]")
{
  Bench b;
  const std::string id = b.call("debug", step(1, 2, true, "x")).reply["continuation_id"];
  b.chat.fail = true;
  auto failed = b.call("debug", step(2, 2, false, "cause", {{"continuation_id", id}}));
  CHECK(failed.error == Errc::provider_error);
  b.chat.fail = false;
  auto retried = b.call("debug", step(2, 2, false, "cause", {{"continuation_id", id}}));
  REQUIRE_FALSE(retried.error);
  CHECK(retried.reply["status"] == "debug_complete");
  CHECK(b.chat.requests.size() == 2);
}

TEST_CASE("a pinned model and thinking_mode reach the expert call", "[core][workflow]")
{
  Bench b;
  auto out =
      b.call("thinkdeep", step(1, 1, false, "x", {{"model", "glm-4.6"}, {"temperature", 0.9}}));
  REQUIRE_FALSE(out.error);
  REQUIRE(b.chat.requests.size() == 1);
  CHECK(b.chat.providers[0] == "glm");
  CHECK(b.chat.requests[0].model == "glm-4.6");
  CHECK(b.chat.requests[0].temperature == 0.9);
}

TEST_CASE("a tool's own fields from step 1 carry over to later steps and the expert",
          "[core][workflow]")
{
  Bench b;
  const std::string id =
      b.call("tracer",
             step(1,
                  2,
                  true,
                  "found the entry point",
                  {{"trace_mode", "dependencies"}, {"target_description", "who uses the cache"}}))
          .reply["continuation_id"];
  auto last = b.call("tracer", step(2, 2, false, "mapped the users", {{"continuation_id", id}}));
  REQUIRE_FALSE(last.error);
  CHECK(last.plan.provider == "glm"); // tracer is a fast tool under auto
  REQUIRE(b.chat.requests.size() == 1);
  const std::string brief = b.chat.requests[0].messages[1].content;
  CHECK(brief.find("trace_mode: dependencies") != std::string::npos);
  CHECK(brief.find("target_description: who uses the cache") != std::string::npos);
  CHECK(b.chat.requests[0].messages[0].content == prompts::get("tracer"));
}
