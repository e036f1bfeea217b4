// The provider-native tools that need no files, end to end against the
// fake Kimi and GLM upstreams: glm_payload_preview (sends nothing),
// kimi_intent_analysis (strict JSON, one repair), kimi_chat_with_tools
// (tool calls, the bounded $web_search loop), glm_web_search and
// kimi_capture_headers.

#include "tests/support/provider_daemon.hpp"
#include "tests/support/text_file.hpp"

#include <catch2/catch.hpp>

namespace {

using namespace exai::test;
using nlohmann::json;

const char* const kValidHints =
    R"({"needs_websearch":true,"complexity":"moderate","domain":"python",)"
    R"("recommended_provider":"KIMI","recommended_model":"kimi-k2","streaming_preferred":false})";

FakeBehavior
replying(const std::string& text)
{
  FakeBehavior behavior;
  behavior.reply = text;
  return behavior;
}

json
body_of(const exai::test::RecordedRequest& request)
{
  return json::parse(request.body);
}

const json kLookupTool = {
    {"type", "function"},
    {"function",
     {{"name", "lookup"},
      {"description", "Look something up"},
      {"parameters", {{"type", "object"}, {"properties", {{"query", {{"type", "string"}}}}}}}}}};

} // namespace

TEST_CASE("glm_payload_preview shows the exact GLM body and sends nothing", "[e2e][provider]")
{
  ProviderDaemon d;
  const json body = d.content("glm_payload_preview",
                              {{"prompt", "hi"},
                               {"model", "glm-4.6"},
                               {"system_prompt", "be brief"},
                               {"thinking_mode", "high"},
                               {"use_websearch", true},
                               {"tools", json::array({kLookupTool})},
                               {"tool_choice", "required"},
                               {"max_tokens", 999999}});
  CHECK(body["model"] == "glm-4.6");
  CHECK(body["stream"] == false);
  REQUIRE(body["messages"].size() == 2);
  CHECK(body["messages"][0] == json{{"role", "system"}, {"content", "be brief"}});
  CHECK(body["messages"][1] == json{{"role", "user"}, {"content", "hi"}});
  CHECK(body["thinking"]["type"] == "enabled");
  REQUIRE(body["tools"].size() == 2);
  CHECK(body["tools"][0]["type"] == "web_search");
  CHECK(body["tools"][1] == kLookupTool);
  CHECK(body["tool_choice"] == "required");
  CHECK(body["max_tokens"].get<int>() < 999999);
  CHECK(d.kimi.request_count() == 0);
  CHECK(d.glm.request_count() == 0);
}

TEST_CASE("glm_payload_preview works without a GLM key and checks its fields", "[e2e][provider]")
{
  ProviderDaemon d({}, "glm");
  const json env = d.reply("glm_payload_preview", {{"prompt", "hi"}});
  CHECK(env["metadata"]["sent"] == false);
  CHECK(json::parse(env["content"].get<std::string>())["model"] == "glm-4.5-flash");
  const json error = d.error("glm_payload_preview", {{"prompt", "hi"}, {"tool_choice", "maybe"}});
  CHECK(error["code"] == "VALIDATION_ERROR");
  CHECK(error["details"]["field"] == "tool_choice");
  CHECK(error["details"]["rule"] == "must be one of: auto, none, required");
  const json model = d.error("glm_payload_preview", {{"prompt", "hi"}, {"model", "kimi-k2"}});
  CHECK(model["details"]["field"] == "model");
  CHECK(d.upstream_requests() == 0);
}

TEST_CASE("kimi_intent_analysis returns normalised routing JSON", "[e2e][provider][intent]")
{
  ProviderDaemon d;
  d.kimi.enqueue(replying(std::string("Here you go:\n```json\n") + kValidHints + "\n```"));
  const json env = d.reply("kimi_intent_analysis", {{"prompt", "why is my asyncio loop slow?"}});
  const json hints = json::parse(env["content"].get<std::string>());
  CHECK(hints["needs_websearch"] == true);
  CHECK(hints["complexity"] == "moderate");
  CHECK(hints["recommended_provider"] == "kimi");
  CHECK(hints["recommended_model"] == "kimi-k2-0905-preview");
  CHECK(env["metadata"]["repaired"] == false);
  CHECK(env["metadata"]["provider_used"] == "kimi");
  REQUIRE(d.kimi.request_count() == 1);
  const json sent = body_of(d.kimi.requests()[0]);
  CHECK(sent["messages"][0]["content"] == prompt_file("kimi_intent_analysis"));
  CHECK(sent["messages"][1]["content"] == "why is my asyncio loop slow?");
}

TEST_CASE("kimi_intent_analysis repairs invalid JSON once", "[e2e][provider][intent]")
{
  ProviderDaemon d;
  d.kimi.enqueue(replying("I think it needs the web"));
  d.kimi.enqueue(replying(kValidHints));
  const json env = d.reply("kimi_intent_analysis", {{"prompt", "route me"}, {"context", "ctx"}});
  CHECK(env["metadata"]["repaired"] == true);
  REQUIRE(d.kimi.request_count() == 2);
  const json repair = body_of(d.kimi.requests()[1]);
  const auto& messages = repair["messages"];
  REQUIRE(messages.size() == 4);
  CHECK(messages[1]["content"] == "route me\n\n[Context]\nctx");
  CHECK(messages[2] == json{{"role", "assistant"}, {"content", "I think it needs the web"}});
  CHECK(messages[3]["content"].get<std::string>().find("contains no JSON object") !=
        std::string::npos);
}

TEST_CASE("kimi_intent_analysis refuses JSON still invalid after the repair",
          "[e2e][provider][intent]")
{
  ProviderDaemon d;
  d.kimi.enqueue(replying("nope"));
  d.kimi.enqueue(replying(R"({"needs_websearch":"yes"})"));
  const json error = d.error("kimi_intent_analysis", {{"prompt", "route me"}});
  CHECK(error["code"] == "PROVIDER_ERROR");
  CHECK(error["message"].get<std::string>().find("after one repair attempt") != std::string::npos);
  CHECK(error["details"]["rule"] == "'needs_websearch' must be true or false");
  CHECK(d.kimi.request_count() == 2);
}

TEST_CASE("kimi_chat_with_tools completes Kimi's $web_search round trip", "[e2e][provider][tools]")
{
  ProviderDaemon d;
  const json env = d.reply("kimi_chat_with_tools",
                           {{"messages", json::array({{{"role", "user"}, {"content", "news?"}}})},
                            {"use_websearch", true}});
  const json answer = json::parse(env["content"].get<std::string>());
  CHECK(answer["content"] == "echo: news? [searched]");
  CHECK(answer["tool_calls"].empty());
  CHECK(env["metadata"]["search_rounds"] == 1);
  REQUIRE(d.kimi.request_count() == 2);
  const json second = body_of(d.kimi.requests()[1]);
  const json& tool_message = second["messages"].back();
  CHECK(tool_message["role"] == "tool");
  CHECK(tool_message["name"] == "$web_search");
  CHECK(json::parse(tool_message["content"].get<std::string>()).contains("search_result"));
}

TEST_CASE("kimi_chat_with_tools bounds the $web_search loop", "[e2e][provider][tools]")
{
  ProviderDaemon d;
  const json error = d.error(
      "kimi_chat_with_tools",
      {{"messages", json::array({{{"role", "user"}, {"content", "loop [[search_forever]]"}}})},
       {"use_websearch", true}});
  CHECK(error["code"] == "PROVIDER_ERROR");
  CHECK(error["message"].get<std::string>().find("kept asking for web searches") !=
        std::string::npos);
  CHECK(d.kimi.request_count() == 5); // the first request and 4 search rounds
}

TEST_CASE("kimi_chat_with_tools hands function calls back and continues with their results",
          "[e2e][provider][tools]")
{
  ProviderDaemon d;
  const json user = {{"role", "user"}, {"content", "look it up [[call_tool=lookup]]"}};
  const json first =
      d.content("kimi_chat_with_tools",
                {{"messages", json::array({user})}, {"tools", json::array({kLookupTool})}});
  CHECK(first["finish_reason"] == "tool_calls");
  REQUIRE(first["tool_calls"].size() == 1);
  const json call = first["tool_calls"][0];
  CHECK(call["function"]["name"] == "lookup");
  const json sent = body_of(d.kimi.requests()[0]);
  CHECK(sent["tools"][0] == kLookupTool);
  CHECK(sent["tool_choice"] == "auto");

  const json messages = json::array(
      {user,
       {{"role", "assistant"}, {"content", ""}, {"tool_calls", json::array({call})}},
       {{"role", "tool"}, {"tool_call_id", call["id"]}, {"name", "lookup"}, {"content", "42"}}});
  const json second = d.content("kimi_chat_with_tools",
                                {{"messages", messages}, {"tools", json::array({kLookupTool})}});
  CHECK(second["finish_reason"] == "stop");
  const json resent = body_of(d.kimi.requests()[1]);
  CHECK(resent["messages"][1]["tool_calls"][0]["id"] == call["id"]);
  CHECK(resent["messages"][2]["tool_call_id"] == call["id"]);
}

TEST_CASE("kimi_chat_with_tools checks messages and model", "[e2e][provider][tools]")
{
  ProviderDaemon d;
  const json no_id = d.error("kimi_chat_with_tools",
                             {{"messages",
                               json::array({{{"role", "user"}, {"content", "a"}},
                                            {{"role", "tool"}, {"content", "b"}}})}});
  CHECK(no_id["code"] == "VALIDATION_ERROR");
  CHECK(no_id["details"]["field"] == "messages[1].tool_call_id");
  const json nameless = d.error(
      "kimi_chat_with_tools",
      {{"messages",
        json::array(
            {{{"role", "assistant"},
              {"content", ""},
              {"tool_calls", json::array({{{"id", "x"}, {"function", json::object()}}})}}})}});
  CHECK(nameless["details"]["field"] == "messages[0].tool_calls[0].function.name");
  CHECK(nameless["details"]["rule"] == "required");
  const json role = d.error("kimi_chat_with_tools",
                            {{"messages", json::array({{{"role", "robot"}, {"content", "a"}}})}});
  CHECK(role["details"]["field"] == "messages[0].role");
  const json glm = d.error(
      "kimi_chat_with_tools",
      {{"messages", json::array({{{"role", "user"}, {"content", "a"}}})}, {"model", "glm-4.6"}});
  CHECK(glm["details"]["field"] == "model");
  CHECK(glm["details"]["rule"] == "a Kimi model");
  CHECK(d.upstream_requests() == 0);
}

TEST_CASE("glm_web_search returns GLM's raw results", "[e2e][provider][search]")
{
  ProviderDaemon d;
  const json env = d.reply("glm_web_search",
                           {{"search_query", "exai daemon"},
                            {"count", 3},
                            {"search_recency_filter", "oneWeek"},
                            {"search_domain_filter", "example.com"}});
  const json results = json::parse(env["content"].get<std::string>());
  CHECK(results["search_result"].size() == 3);
  CHECK(env["metadata"]["results"] == 3);
  REQUIRE(d.glm.request_count() == 1);
  const auto request = d.glm.requests()[0];
  CHECK(request.path == "/v1/web_search");
  const json sent = json::parse(request.body);
  CHECK(sent == json{{"search_query", "exai daemon"},
                     {"count", 3},
                     {"search_engine", "search-prime"},
                     {"search_recency_filter", "oneWeek"},
                     {"search_domain_filter", "example.com"}});
  CHECK(request.headers.at("Authorization") == std::string("Bearer ") + exai::test::kGlmTestKey);
}

TEST_CASE("glm_web_search keeps GLM's error code and message", "[e2e][provider][search]")
{
  ProviderDaemon d;
  const json error = d.error("glm_web_search", {{"search_query", "bad [[status=400]]"}});
  CHECK(error["code"] == "PROVIDER_ERROR");
  CHECK(error["details"]["status"] == 400);
  CHECK(error["details"]["upstream_code"] == "1214");
  CHECK(error["details"]["upstream_message"].get<std::string>().find("fake web search refused") !=
        std::string::npos);
  const json count = d.error("glm_web_search", {{"search_query", "q"}, {"count", 51}});
  CHECK(count["code"] == "VALIDATION_ERROR");
  CHECK(count["details"]["field"] == "count");
  CHECK(count["details"]["rule"] == "must be from 1 to 50");
}

TEST_CASE("kimi_capture_headers returns the reply with its cache and idempotency headers",
          "[e2e][provider][headers]")
{
  ProviderDaemon d;
  const json report = d.content(
      "kimi_capture_headers",
      {{"prompt", "hello"}, {"idempotency_key", "idem-1"}, {"context_cache_token", "cache-7"}});
  CHECK(report["content"] == "echo: hello");
  CHECK(report["finish_reason"] == "stop");
  CHECK(report["headers"]["idempotency-key"] == "idem-1");
  CHECK(report["headers"]["msh-context-cache-token-saved"] == "cache-7");
  CHECK(report["headers"].contains("msh-request-id"));
  const auto request = d.kimi.requests().at(0);
  CHECK(request.headers.at("Idempotency-Key") == "idem-1");
}

TEST_CASE("kimi_capture_headers skips cleanly without a Kimi key", "[e2e][provider][headers]")
{
  ProviderDaemon d({}, "kimi");
  const json report = d.content("kimi_capture_headers", {{"prompt", "hello"}});
  CHECK(report["status"] == "skipped");
  CHECK(report["reason"].get<std::string>().find("KIMI_API_KEY") != std::string::npos);
  CHECK(d.upstream_requests() == 0);
}
