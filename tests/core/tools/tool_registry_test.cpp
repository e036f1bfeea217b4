#include "core/tools/tool_registry.hpp"

#include <catch2/catch.hpp>

#include <thread>
#include <vector>

using exai::core::process_tools;
using exai::core::strip_tool_suffix;
using exai::core::ToolRegistry;

TEST_CASE("the built-in tools are listed in name order with schemas, titles and annotations",
          "[core][tool_registry]")
{
  const auto providers = exai::core::ProviderRegistry::build(
      exai::core::Settings({}, {{"KIMI_API_KEY", "k"}, {"GLM_API_KEY", "g"}}, {}));
  const auto list = process_tools().describe(providers);
  std::vector<std::string> names;
  for (const auto& tool : list) {
    CAPTURE(tool["name"]);
    names.push_back(tool["name"]);
    CHECK(tool["inputSchema"]["type"] == "object");
    CHECK(tool["inputSchema"]["additionalProperties"] == false);
    CHECK_FALSE(tool["description"].get<std::string>().empty());
    CHECK_FALSE(tool["title"].get<std::string>().empty());
    // Only the tools that upload or delete provider files change anything.
    const bool writes = tool["name"] == "kimi_upload_files" ||
                        tool["name"] == "kimi_manage_files" || tool["name"] == "glm_upload_file";
    CHECK(tool["annotations"]["readOnlyHint"] == !writes);
    CHECK(tool["outputSchema"]["required"].size() == 4);
  }
  CHECK(names == std::vector<std::string>{"activity",
                                          "analyze",
                                          "challenge",
                                          "chat",
                                          "codereview",
                                          "consensus",
                                          "debug",
                                          "docgen",
                                          "glm_payload_preview",
                                          "glm_upload_file",
                                          "glm_web_search",
                                          "health",
                                          "kimi_capture_headers",
                                          "kimi_chat_with_files",
                                          "kimi_chat_with_tools",
                                          "kimi_intent_analysis",
                                          "kimi_manage_files",
                                          "kimi_upload_files",
                                          "listmodels",
                                          "planner",
                                          "precommit",
                                          "provider_capabilities",
                                          "refactor",
                                          "secaudit",
                                          "self-check",
                                          "status",
                                          "testgen",
                                          "thinkdeep",
                                          "toolcall_log_tail",
                                          "tracer",
                                          "version"});
}

TEST_CASE("client suffixes on tool names are stripped", "[core][tool_registry]")
{
  for (const char* name : {"chat_EXAI-WS", "chat-EXAI-WS", "chat_EXAI_WS", "chat-EXAI_WS"}) {
    CAPTURE(name);
    CHECK(strip_tool_suffix(name) == "chat");
    // Stripped once, where a request is parsed; the registry matches exactly.
    CHECK(process_tools().find(strip_tool_suffix(name)) != nullptr);
    CHECK(process_tools().find(name) == nullptr);
  }
  CHECK(strip_tool_suffix("chat") == "chat");
  CHECK(strip_tool_suffix("_EXAI-WS") == "_EXAI-WS"); // nothing would remain
  CHECK(strip_tool_suffix("chat_EXAI-WS_EXAI-WS") == "chat_EXAI-WS");
  CHECK(process_tools().find("chat_EXAI") == nullptr);
}

TEST_CASE("registering a tool name twice is refused", "[core][tool_registry]")
{
  ToolRegistry registry;
  exai::core::register_builtin_tools(registry);
  CHECK(registry.size() == 31);
  CHECK_THROWS(exai::core::register_builtin_tools(registry));
}

TEST_CASE("threads racing on the process tool registry all get the same one",
          "[core][tool_registry]")
{
  std::vector<const ToolRegistry*> seen(8, nullptr);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < seen.size(); ++i) {
    threads.emplace_back([&, i] { seen[i] = &process_tools(); });
  }
  for (auto& t : threads) {
    t.join();
  }
  for (const auto* p : seen) {
    CHECK(p == &process_tools());
  }
}
