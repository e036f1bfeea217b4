// Tool visibility end to end: DISABLED_TOOLS, LEAN_MODE + LEAN_TOOLS,
// STRICT_LEAN and DIAGNOSTICS as the original daemon applied them, on the
// list (list_tools) and on calls (TOOL_NOT_FOUND naming the rule).

#include "tests/support/provider_daemon.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <set>

namespace {

using namespace exai::test;
using nlohmann::json;
using namespace std::chrono_literals;

std::set<std::string>
listed_tools(ProviderDaemon& d)
{
  d.session().send_json({{"op", "list_tools"}});
  const auto res = d.session().recv_until(
      [](const json& f) { return f.value("op", "") == "list_tools_res"; }, deadline_in(10s));
  REQUIRE(res);
  std::set<std::string> names;
  for (const auto& tool : (*res)["tools"]) {
    names.insert(tool["name"].get<std::string>());
  }
  return names;
}

// The original daemon's 31 registered tools (tools/registry.py TOOL_MAP).
const std::set<std::string> kOriginalTools = {"chat",
                                              "analyze",
                                              "debug",
                                              "codereview",
                                              "refactor",
                                              "secaudit",
                                              "planner",
                                              "tracer",
                                              "testgen",
                                              "consensus",
                                              "thinkdeep",
                                              "docgen",
                                              "version",
                                              "listmodels",
                                              "self-check",
                                              "precommit",
                                              "challenge",
                                              "kimi_upload_files",
                                              "kimi_chat_with_files",
                                              "kimi_manage_files",
                                              "kimi_intent_analysis",
                                              "kimi_capture_headers",
                                              "kimi_chat_with_tools",
                                              "glm_upload_file",
                                              "glm_web_search",
                                              "glm_payload_preview",
                                              "provider_capabilities",
                                              "toolcall_log_tail",
                                              "activity",
                                              "health",
                                              "status"};

const std::set<std::string> kLeanDefault = {"status",
                                            "chat",
                                            "planner",
                                            "thinkdeep",
                                            "analyze",
                                            "codereview",
                                            "refactor",
                                            "testgen",
                                            "debug",
                                            "kimi_chat_with_files"};

json
not_found(ProviderDaemon& d, const std::string& tool)
{
  const json error = d.error(tool, json::object());
  CHECK(error["code"] == "TOOL_NOT_FOUND");
  CHECK(error["details"]["requested_tool"] == tool);
  return error;
}

} // namespace

TEST_CASE("list_tools has the original's 31 tools with DIAGNOSTICS on", "[e2e][visibility]")
{
  REQUIRE(kOriginalTools.size() == 31);
  ProviderDaemon d(ServeProcess::Env{{"DIAGNOSTICS", "true"}});
  CHECK(listed_tools(d) == kOriginalTools);
}

TEST_CASE("self-check is hidden and refused without DIAGNOSTICS", "[e2e][visibility]")
{
  ProviderDaemon d;
  auto expected = kOriginalTools;
  expected.erase("self-check");
  CHECK(listed_tools(d) == expected);
  const json error = not_found(d, "self-check");
  CHECK(error["details"]["reason"].get<std::string>().find("DIAGNOSTICS=true") !=
        std::string::npos);
}

TEST_CASE("DISABLED_TOOLS removes tools from the list and refuses their calls", "[e2e][visibility]")
{
  ProviderDaemon d(ServeProcess::Env{{"DISABLED_TOOLS", "Chat, kimi_upload_files"}});
  const auto names = listed_tools(d);
  CHECK(names.count("chat") == 0);
  CHECK(names.count("kimi_upload_files") == 0);
  CHECK(names.count("analyze") == 1);
  const json error = not_found(d, "chat");
  CHECK(error["message"].get<std::string>().find("disabled by DISABLED_TOOLS") !=
        std::string::npos);
  CHECK(d.upstream_requests() == 0);
}

TEST_CASE("LEAN_MODE keeps the core set plus version and listmodels", "[e2e][visibility]")
{
  ProviderDaemon d(ServeProcess::Env{{"LEAN_MODE", "true"}});
  auto expected = kLeanDefault;
  expected.insert({"version", "listmodels"});
  CHECK(listed_tools(d) == expected);
  const json error = not_found(d, "glm_payload_preview");
  CHECK(error["details"]["reason"].get<std::string>().find("LEAN_MODE") != std::string::npos);
}

TEST_CASE("STRICT_LEAN drops the utilities from the lean set", "[e2e][visibility]")
{
  ProviderDaemon d(ServeProcess::Env{{"LEAN_MODE", "true"}, {"STRICT_LEAN", "true"}});
  CHECK(listed_tools(d) == kLeanDefault);
  not_found(d, "version");
}

TEST_CASE("LEAN_TOOLS replaces the lean set; DISABLED_TOOLS still applies", "[e2e][visibility]")
{
  ProviderDaemon d(ServeProcess::Env{
      {"LEAN_MODE", "true"}, {"LEAN_TOOLS", "chat,health,status"}, {"DISABLED_TOOLS", "status"}});
  CHECK(listed_tools(d) == std::set<std::string>{"chat", "health", "listmodels", "version"});
  not_found(d, "status");
}

TEST_CASE("unknown names in DISABLED_TOOLS are warned about, not fatal", "[e2e][visibility]")
{
  ProviderDaemon d(ServeProcess::Env{{"DISABLED_TOOLS", "chat,aug_chat"}});
  CHECK(d.serve->wait_for_stderr("names no tool: aug_chat", 5s));
  CHECK(listed_tools(d).count("chat") == 0);
}

TEST_CASE("a visibility switch that is not a boolean stops start-up naming it", "[e2e][visibility]")
{
  ServeProcess serve(ServeProcess::Env{{"LEAN_MODE", "maybe"}});
  CHECK(serve.wait_exit() == 78);
  CHECK(serve.stderr_text().find("LEAN_MODE='maybe'") != std::string::npos);
}
