// The workflow tools end to end: a real `exai serve` against two fake
// upstreams (Kimi and GLM) that record every request. Intermediate steps
// cause no upstream request; the final step causes exactly one, carrying the
// tool's own system prompt, the consolidated findings and the file contents.

#include "tests/support/daemon_checks.hpp"
#include "tests/support/fake_upstream.hpp"
#include "tests/support/provider_daemon.hpp"
#include "tests/support/serve_process.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/text_file.hpp"
#include "tests/support/workflow_step.hpp"
#include "tests/support/ws_client.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace {

using namespace exai::test;
using nlohmann::json;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

// The one request the expert step sent (to whichever provider), parsed.
json
only_request(const ProviderDaemon& d)
{
  auto requests = d.kimi.requests();
  const auto glm = d.glm.requests();
  requests.insert(requests.end(), glm.begin(), glm.end());
  REQUIRE(requests.size() == 1);
  return json::parse(requests[0].body);
}

std::string
error_field(const json& res)
{
  INFO(res.dump());
  REQUIRE(res.contains("error"));
  CHECK(res["error"]["code"] == "VALIDATION_ERROR");
  return res["error"]["details"].value("field", "");
}

} // namespace

TEST_CASE("each workflow tool: steps call no model, the final step calls the expert once",
          "[e2e][workflow]")
{
  ProviderDaemon d;
  const std::string code = d.file("store.cpp", "int store_limit = 42;\n");
  for (const char* name : {"analyze",
                           "codereview",
                           "debug",
                           "docgen",
                           "refactor",
                           "secaudit",
                           "testgen",
                           "thinkdeep",
                           "tracer"}) {
    const std::string tool = name;
    CAPTURE(tool);
    d.kimi.reset_stats();
    d.glm.reset_stats();
    json own = {{"relevant_files", {code}}};
    if (tool == "tracer") {
      own["trace_mode"] = "precision";
      own["target_description"] = "how the limit is read";
    }
    const json one = d.reply(tool, step(1, 3, true, "first finding of " + tool, own));
    CHECK(one["status"] == "pause_for_" + tool);
    CHECK_FALSE(one["required_actions"].empty());
    const std::string id = one["continuation_id"];
    const json two =
        d.reply(tool, step(2, 3, true, "second finding of " + tool, {{"continuation_id", id}}));
    CHECK(two["status"] == "pause_for_" + tool);
    CHECK(d.upstream_requests() == 0);

    const json done = d.reply(tool,
                              step(3,
                                   3,
                                   false,
                                   "final finding of " + tool,
                                   {{"continuation_id", id}, {"confidence", "high"}}));
    CHECK(done["status"] == tool + "_complete");
    CHECK(done["expert_analysis"]["status"] == "analysis_complete");
    const json body = only_request(d);
    REQUIRE(body["messages"].size() == 2);
    CHECK(body["messages"][0]["role"] == "system");
    CHECK(body["messages"][0]["content"] == prompt_file(tool));
    const std::string user = body["messages"][1]["content"];
    CHECK(user.find("first finding of " + tool) != std::string::npos);
    CHECK(user.find("second finding of " + tool) != std::string::npos);
    CHECK(user.find("final finding of " + tool) != std::string::npos);
    CHECK(user.find("1│ int store_limit = 42;") != std::string::npos);
    // The fake echoes the user message: the reply is the expert's answer.
    CHECK(done["content"].get<std::string>().rfind("echo: ", 0) == 0);
  }
  CHECK(exai::test::capacity_back_to_zero(d.serve->port()));
}

TEST_CASE("deep workflow tools ask the quality model under auto", "[e2e][workflow]")
{
  ProviderDaemon d;
  const json done = d.reply("debug", step(1, 1, false, "the cause", {{"model", "auto"}}));
  CHECK(done["metadata"]["model_used"] == "kimi-thinking-preview");
  CHECK(only_request(d)["model"] == "kimi-thinking-preview");
}

TEST_CASE("use_assistant_model false and certain confidence skip the expert", "[e2e][workflow]")
{
  ProviderDaemon d;
  const json off =
      d.reply("thinkdeep", step(1, 1, false, "settled", {{"use_assistant_model", false}}));
  CHECK(off["status"] == "local_work_complete");
  const json certain = d.reply("debug", step(1, 1, false, "proven", {{"confidence", "certain"}}));
  CHECK(certain["status"] == "local_work_complete");
  CHECK(d.upstream_requests() == 0);
}

TEST_CASE("backtracking drops the discarded steps from what the expert sees", "[e2e][workflow]")
{
  ProviderDaemon d;
  const std::string id = d.reply("debug", step(1, 3, true, "symptom noted"))["continuation_id"];
  (void)d.reply("debug", step(2, 3, true, "blamed the cache", {{"continuation_id", id}}));
  const json back = d.reply("debug",
                            step(2,
                                 3,
                                 true,
                                 "blamed the lock order",
                                 {{"continuation_id", id}, {"backtrack_from_step", 2}}));
  CHECK(back["workflow_state"]["steps_recorded"] == json::array({1, 2}));
  (void)d.reply("debug", step(3, 3, false, "lock order confirmed", {{"continuation_id", id}}));
  const std::string user = only_request(d)["messages"][1]["content"];
  CHECK(user.find("blamed the lock order") != std::string::npos);
  CHECK(user.find("blamed the cache") == std::string::npos);
}

TEST_CASE("bad steps are refused with the field and rule, holding nothing", "[e2e][workflow]")
{
  ProviderDaemon d;
  CHECK(error_field(d.session_call(
            "analyze", step(2, 3, true, "x", {{"relevant_files", {"/x"}}}))) == "step_number");
  CHECK(error_field(d.session_call("debug", step(5, 3, true, "x"))) == "step_number");
  const std::string id = d.reply("debug", step(1, 3, true, "x"))["continuation_id"];
  CHECK(error_field(d.session_call("debug", step(3, 3, true, "x", {{"continuation_id", id}}))) ==
        "step_number");
  CHECK(
      error_field(d.session_call(
          "debug", step(2, 3, true, "x", {{"continuation_id", id}, {"backtrack_from_step", 2}}))) ==
      "backtrack_from_step");
  CHECK(error_field(d.session_call(
            "analyze",
            step(2, 3, true, "x", {{"continuation_id", id}, {"relevant_files", {"/x"}}}))) ==
        "continuation_id");
  CHECK(error_field(d.session_call("codereview", step(1, 2, true, "x"))) == "relevant_files");
  CHECK(error_field(d.session_call(
            "debug", step(1, 2, true, "x", {{"issues_found", {{{"severity", "high"}}}}}))) ==
        "issues_found[0].description");
  const std::string outside = "/etc/hostname";
  const json res = d.session_call("debug", step(1, 1, false, "x", {{"relevant_files", {outside}}}));
  CHECK(error_field(res) == "relevant_files[0]");
  CHECK(d.upstream_requests() == 0);
  CHECK(exai::test::capacity_back_to_zero(d.serve->port()));
}

TEST_CASE("the expert call sends a progress note before its result", "[e2e][workflow]")
{
  ProviderDaemon d;
  d.session().send_json(
      {{"op", "call_tool"},
       {"request_id", "expert"},
       {"name", "analyze"},
       {"arguments", step(1, 1, false, "x", {{"relevant_files", {d.file("a.c", "int a;\n")}}})}});
  bool noted = false;
  const auto res = d.session().recv_until(
      [&](const json& frame) {
        if (frame.value("op", "") == "progress" &&
            frame.value("note", "").rfind("calling_expert_analysis", 0) == 0) {
          noted = true;
        }
        return frame.value("op", "") == "call_tool_res";
      },
      deadline_in(20s));
  REQUIRE(res);
  CHECK(noted);
  CHECK(exai::test::result_envelope(*res)["status"] == "analyze_complete");
}

TEST_CASE("planner plans over the wire without calling a model", "[e2e][workflow]")
{
  ProviderDaemon d;
  const json plan_one = d.reply("planner", plan_step(1, 2, true, "Choose a queue"));
  CHECK(plan_one["status"] == "pause_for_planner");
  const json done = d.reply(
      "planner",
      plan_step(2, 2, false, "Add retries", {{"continuation_id", plan_one["continuation_id"]}}));
  CHECK(done["status"] == "planner_complete");
  CHECK(done["content"].get<std::string>().find("2. Add retries") != std::string::npos);
  CHECK(d.upstream_requests() == 0);
}

TEST_CASE("precommit reviews a real repository's diff", "[e2e][workflow][precommit]")
{
  ProviderDaemon d;
  const std::string repo = (fs::path(d.roots.path()) / "repo").string();
  fs::create_directories(repo);
  const std::string git = "git -C '" + repo + "' -c user.name=exai -c user.email=exai@test ";
  std::ofstream(repo + "/main.c") << "int main(void) { return 0; }\n";
  REQUIRE(std::system(
              (git + "init -q && " + git + "add main.c && " + git + "commit -qm init").c_str()) ==
          0);
  std::ofstream(repo + "/main.c", std::ios::app) << "int added_by_the_change;\n";

  const json one = d.reply("precommit", step(1, 2, true, "checked the change", {{"path", repo}}));
  CHECK(one["status"] == "pause_for_precommit");
  CHECK(d.upstream_requests() == 0);
  const json done = d.reply(
      "precommit", step(2, 2, false, "ready", {{"continuation_id", one["continuation_id"]}}));
  CHECK(done["status"] == "precommit_complete");
  const json body = only_request(d);
  CHECK(body["messages"][0]["content"] == prompt_file("precommit"));
  const std::string user = body["messages"][1]["content"];
  CHECK(user.find(" M main.c") != std::string::npos);
  CHECK(user.find("+int added_by_the_change;") != std::string::npos);

  const std::string plain = (fs::path(d.roots.path()) / "plain").string();
  fs::create_directories(plain);
  CHECK(error_field(d.session_call("precommit", step(1, 1, false, "x", {{"path", plain}}))) ==
        "path");
  CHECK(exai::test::capacity_back_to_zero(d.serve->port()));
}

TEST_CASE("consensus asks each model once, on its own provider, with its stance",
          "[e2e][workflow][consensus]")
{
  ProviderDaemon d;
  const json one = d.reply("consensus",
                           step(1,
                                2,
                                true,
                                "my own view",
                                {{"step", "Adopt Redis for shared capacity?"},
                                 {"models",
                                  {{{"model", "glm-4.6"}, {"stance", "for"}},
                                   {{"model", "kimi-k2"}, {"stance", "against"}}}}}));
  CHECK(one["status"] == "pause_for_consensus");
  CHECK(d.glm.request_count() == 1);
  CHECK(d.kimi.request_count() == 0);
  const json first = json::parse(d.glm.requests()[0].body);
  CHECK(first["model"] == "glm-4.6");
  CHECK(first["messages"][0]["content"] ==
        prompt_file("consensus") + "\n" + prompt_file("consensus_for"));
  const json done = d.reply(
      "consensus", plan_step(2, 2, false, "next", {{"continuation_id", one["continuation_id"]}}));
  CHECK(done["status"] == "consensus_complete");
  CHECK(done["accumulated_responses"].size() == 2);
  CHECK(d.kimi.request_count() == 1);
  CHECK(d.glm.request_count() == 1);
  const json second = json::parse(d.kimi.requests()[0].body);
  CHECK(second["messages"][0]["content"] ==
        prompt_file("consensus") + "\n" + prompt_file("consensus_against"));
  CHECK(exai::test::capacity_back_to_zero(d.serve->port()));
}

TEST_CASE("consensus consult_all_at_once asks every model at once, never past a provider's cap",
          "[e2e][workflow][consensus]")
{
  ProviderDaemon d(ServeProcess::Env{{"EXAI_WS_GLM_MAX_INFLIGHT", "2"}});
  // Every model request hangs until released, so what runs at once is seen.
  d.session().send_json({{"op", "call_tool"},
                         {"request_id", "all"},
                         {"name", "consensus"},
                         {"arguments",
                          step(1,
                               4,
                               false,
                               "sharding spreads the lock",
                               {{"step", "Shard the result store? [[hang]]"},
                                {"consult_all_at_once", true},
                                {"models",
                                 {{{"model", "glm-4.5-flash"}, {"stance", "for"}},
                                  {{"model", "glm-4.5-flash"}, {"stance", "against"}},
                                  {{"model", "glm-4.6"}, {"stance", "neutral"}},
                                  {{"model", "kimi-k2"}, {"stance", "neutral"}}}}})}});
  REQUIRE(d.glm.wait_for_concurrency(2, 10s));
  REQUIRE(d.kimi.wait_for_concurrency(1, 10s));
  CHECK(d.glm.request_count() == 2); // the third GLM model waits for a permit
  d.glm.release_hangs();
  d.kimi.release_hangs();
  REQUIRE(d.glm.wait_for_requests(3, 10s));
  d.glm.release_hangs();
  const auto res = d.session().recv_until(
      [](const json& f) { return f.value("op", "") == "call_tool_res"; }, deadline_in(20s));
  REQUIRE(res);
  const json all = exai::test::result_envelope(*res);
  CHECK(all["status"] == "consensus_complete");
  REQUIRE(all["accumulated_responses"].size() == 4);
  for (const auto& response : all["accumulated_responses"]) {
    CHECK(response["status"] == "success");
  }
  CHECK(d.glm.peak_concurrency() == 2);
  CHECK(d.kimi.request_count() == 1);
  CHECK(exai::test::capacity_back_to_zero(d.serve->port()));
}
