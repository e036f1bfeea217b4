#include "core/providers/model_catalog.hpp"
#include "core/providers/provider_features.hpp"

#include <catch2/catch.hpp>

using namespace exai::core;

TEST_CASE("thinking_mode maps to GLM's thinking switch and is noted where it cannot apply",
          "[core][providers]")
{
  const auto& catalog = ModelCatalog::builtin();
  ChatRequest glm;
  CHECK(apply_thinking(glm, "glm", *catalog.find("glm-4.6"), ThinkingMode::high).empty());
  CHECK(glm.extra["thinking"]["type"] == "enabled");
  ChatRequest off;
  CHECK(apply_thinking(off, "glm", *catalog.find("glm-4.6"), ThinkingMode::minimal).empty());
  CHECK(off.extra["thinking"]["type"] == "disabled");
  ChatRequest kimi;
  CHECK_THAT(apply_thinking(kimi, "kimi", *catalog.find("kimi-k2"), ThinkingMode::max),
             Catch::Contains("ignored"));
  CHECK_FALSE(kimi.extra.contains("thinking"));
  ChatRequest thinker;
  CHECK(apply_thinking(thinker, "kimi", *catalog.find("kimi-thinking-preview"), ThinkingMode::max)
            .empty());
  CHECK(parse_thinking_mode("max") == ThinkingMode::max);
  CHECK_FALSE(parse_thinking_mode("loud"));
}

TEST_CASE("web search is Kimi's builtin function or GLM's web_search tool", "[core][providers]")
{
  ChatRequest kimi;
  apply_web_search(kimi, "kimi");
  CHECK(kimi.tools[0]["type"] == "builtin_function");
  CHECK(kimi.tools[0]["function"]["name"] == "$web_search");
  CHECK(kimi.tool_choice == "auto");
  ChatRequest glm;
  apply_web_search(glm, "glm");
  CHECK(glm.tools[0]["type"] == "web_search");
  CHECK(glm.tools[0]["web_search"]["enable"] == true);
  const ToolCall call{"c1", "builtin_function", "$web_search", R"({"query":"q"})"};
  CHECK(is_builtin_web_search(call));
  const ChatMessage echo = web_search_echo(call);
  CHECK(echo.role == "tool");
  CHECK(echo.tool_call_id == "c1");
  CHECK(echo.content == R"({"query":"q"})");
  CHECK_FALSE(is_builtin_web_search({"c2", "function", "lookup", "{}"}));
}
