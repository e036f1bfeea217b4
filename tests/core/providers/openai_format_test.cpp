#include "core/providers/openai_format.hpp"

#include <catch2/catch.hpp>

#include <stdexcept>

using namespace exai::core;
using nlohmann::json;

TEST_CASE("the chat request body carries model, messages and the optional knobs", "[core][openai]")
{
  ChatRequest request;
  request.model = "glm-4.5-flash";
  request.messages = {{"system", "be brief"}, {"user", "hi \xff"}};
  const json plain = json::parse(openai::chat_request_body(request));
  CHECK(plain["model"] == "glm-4.5-flash");
  CHECK(plain["stream"] == false);
  CHECK(plain["messages"].size() == 2);
  CHECK(plain["messages"][1]["role"] == "user");
  CHECK_FALSE(plain.contains("temperature"));
  CHECK_FALSE(plain.contains("max_tokens"));
  request.temperature = 0.2;
  request.max_tokens = 100;
  const json full = json::parse(openai::chat_request_body(request, true));
  CHECK(full["temperature"] == 0.2);
  CHECK(full["max_tokens"] == 100);
  CHECK(full["stream"] == true);
}

TEST_CASE("each message's text is its own, whichever system prompts came before on the thread",
          "[core][openai]")
{
  // System prompts are escaped once per thread and kept: more prompts than
  // the cache holds, alternating, each with characters JSON must escape.
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 12; ++i) {
      ChatRequest request;
      request.model = "m";
      const std::string system = "rules " + std::to_string(i) + " \"quoted\"\n\t\\ \xff";
      request.messages = {{"system", system}, {"user", "q" + std::to_string(i)}};
      const json body = json::parse(openai::chat_request_body(request, true));
      CHECK(body["messages"][0] ==
            json{{"role", "system"},
                 {"content", "rules " + std::to_string(i) + " \"quoted\"\n\t\\ \xef\xbf\xbd"}});
      CHECK(body["messages"][1] == json{{"role", "user"}, {"content", "q" + std::to_string(i)}});
      CHECK(body["model"] == "m");
      CHECK(body["stream"] == true);
    }
  }
  // A provider's own message list (in `extra`) replaces ours.
  ChatRequest own;
  own.model = "m";
  own.messages = {{"user", "ours"}};
  own.extra = {{"messages", json::array({{{"role", "user"}, {"content", "theirs"}}})}};
  const json body = json::parse(openai::chat_request_body(own));
  REQUIRE(body["messages"].size() == 1);
  CHECK(body["messages"][0]["content"] == "theirs");
}

TEST_CASE("a chat reply is read from the first choice; unusable replies say why", "[core][openai]")
{
  const auto reply = std::get<ChatReply>(openai::parse_chat_reply(
      R"({"model":"m1","choices":[{"message":{"content":"hello"},"finish_reason":"stop"}],"usage":{"total_tokens":3}})",
      "asked"));
  CHECK(reply.content == "hello");
  CHECK(reply.model == "m1");
  CHECK(reply.finish_reason == "stop");
  CHECK(reply.usage["total_tokens"] == 3);
  const auto minimal = std::get<ChatReply>(
      openai::parse_chat_reply(R"({"choices":[{"message":{"content":"x"}}]})", "asked"));
  CHECK(minimal.model == "asked");
  CHECK(minimal.usage == json::object());
  CHECK(std::get<openai::ReplyProblem>(openai::parse_chat_reply("{oops", "m")).what ==
        "malformed JSON");
  CHECK(std::get<openai::ReplyProblem>(openai::parse_chat_reply(R"({"choices":[]})", "m")).what ==
        "no choices");
}

TEST_CASE("error answers are classified for retries and the circuit breaker", "[core][openai]")
{
  CHECK(openai::error_code(R"({"error":{"code":"1302","message":"busy"}})") == "1302");
  CHECK(openai::error_code(R"({"error":{"code":1302}})") == "1302");
  CHECK(openai::error_code("not json").empty());
  const auto busy = openai::classify_status(429, "GLM", "1302");
  CHECK(busy.code == Errc::over_capacity);
  CHECK(busy.retryable);
  CHECK_FALSE(busy.provider_fault);
  CHECK_THAT(busy.message, Catch::Contains("1302"));
  const auto server = openai::classify_status(503, "GLM", "");
  CHECK(server.retryable);
  CHECK(server.provider_fault);
  const auto auth = openai::classify_status(401, "KIMI", "");
  CHECK_FALSE(auth.retryable);
  CHECK_FALSE(auth.provider_fault);
  CHECK_THAT(auth.message, Catch::Contains("check the API key"));
}

TEST_CASE("images become image_url parts; file bytes are encoded, data URLs pass through",
          "[core][openai]")
{
  ChatRequest request;
  request.model = "kimi-latest";
  ChatMessage user{"user", "what is this?"};
  user.images.push_back({"image/png", "", "PNGBYTES"});
  user.images.push_back({"image/gif", "data:image/gif;base64,R0lG", ""});
  request.messages = {user};
  const auto fake_base64 = [](std::string_view bytes) { return "b64(" + std::string(bytes) + ")"; };
  const json body = json::parse(openai::chat_request_body(request, false, fake_base64));
  const json& content = body["messages"][0]["content"];
  REQUIRE(content.is_array());
  REQUIRE(content.size() == 3);
  CHECK(content[0] == json{{"type", "text"}, {"text", "what is this?"}});
  CHECK(content[1]["image_url"]["url"] == "data:image/png;base64,b64(PNGBYTES)");
  CHECK(content[2]["image_url"]["url"] == "data:image/gif;base64,R0lG");
  // Without an encoder a file image is refused, never dropped.
  CHECK_THROWS_AS(openai::chat_request_body(request), std::invalid_argument);
}

TEST_CASE("tools, tool_choice and provider fields reach the body; tool turns round-trip",
          "[core][openai]")
{
  ChatRequest request;
  request.model = "glm-4.6";
  request.tools = json::array({{{"type", "web_search"}, {"web_search", {{"enable", true}}}}});
  request.tool_choice = "auto";
  request.extra = {{"thinking", {{"type", "enabled"}}}};
  ChatMessage asked{"assistant", ""};
  asked.tool_calls.push_back({"c1", "builtin_function", "$web_search", R"({"query":"x"})"});
  ChatMessage answer{"tool", R"({"query":"x"})"};
  answer.tool_call_id = "c1";
  answer.name = "$web_search";
  request.messages = {{"user", "news?"}, asked, answer};
  const json body = json::parse(openai::chat_request_body(request));
  CHECK(body["tools"][0]["type"] == "web_search");
  CHECK(body["tool_choice"] == "auto");
  CHECK(body["thinking"]["type"] == "enabled");
  CHECK(body["messages"][1]["tool_calls"][0]["function"]["name"] == "$web_search");
  CHECK(body["messages"][1]["tool_calls"][0]["function"]["arguments"] == R"({"query":"x"})");
  CHECK(body["messages"][2]["tool_call_id"] == "c1");
  CHECK(body["messages"][2]["name"] == "$web_search");
  // No tools: neither key is sent.
  ChatRequest plain;
  plain.model = "m";
  plain.tool_choice = "auto";
  const json none = json::parse(openai::chat_request_body(plain));
  CHECK_FALSE(none.contains("tools"));
  CHECK_FALSE(none.contains("tool_choice"));
}

TEST_CASE("a reply's tool calls and GLM search results are read", "[core][openai]")
{
  const auto reply = std::get<ChatReply>(openai::parse_chat_reply(
      R"({"choices":[{"finish_reason":"tool_calls","message":{"content":"","tool_calls":[
          {"id":"t1","type":"builtin_function","function":{"name":"$web_search","arguments":"{\"q\":1}"}},
          {"id":"t2","type":"function","function":{"name":"f","arguments":{"a":2}}},
          "junk"]}}],"web_search":[{"title":"r"}]})",
      "kimi-k2"));
  CHECK(reply.finish_reason == "tool_calls");
  REQUIRE(reply.tool_calls.size() == 2);
  CHECK(reply.tool_calls[0].id == "t1");
  CHECK(reply.tool_calls[0].type == "builtin_function");
  CHECK(reply.tool_calls[0].arguments == R"({"q":1})");
  CHECK(reply.tool_calls[1].arguments == R"({"a":2})"); // an object is kept as JSON text
  CHECK(reply.web_search[0]["title"] == "r");
}
