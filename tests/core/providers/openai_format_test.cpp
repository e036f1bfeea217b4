#include "core/providers/openai_format.hpp"

#include <catch2/catch.hpp>

using namespace exai::core;
using nlohmann::json;

TEST_CASE("the chat request body carries model, messages and the optional knobs",
          "[core][openai]")
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

TEST_CASE("a chat reply is read from the first choice; unusable replies say why",
          "[core][openai]")
{
  const auto reply = std::get<ChatReply>(openai::parse_chat_reply(
      R"({"model":"m1","choices":[{"message":{"content":"hello"},"finish_reason":"stop"}],"usage":{"total_tokens":3}})",
      "asked"));
  CHECK(reply.content == "hello");
  CHECK(reply.model == "m1");
  CHECK(reply.finish_reason == "stop");
  CHECK(reply.usage["total_tokens"] == 3);
  const auto minimal =
      std::get<ChatReply>(openai::parse_chat_reply(R"({"choices":[{"message":{"content":"x"}}]})", "asked"));
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
