#include "core/providers/chat_stream.hpp"
#include "core/providers/openai_format.hpp"

#include <catch2/catch.hpp>

#include <string>

using namespace exai::core;
using exai::core::openai::ChatStream;
using exai::core::openai::StreamProblem;
using nlohmann::json;

namespace {

std::string
event(const json& data)
{
  return "data: " + data.dump() + "\n\n";
}

json
delta_chunk(json delta, json finish = nullptr)
{
  return {{"id", "c1"},
          {"model", "glm-4.5"},
          {"choices", {{{"index", 0}, {"delta", std::move(delta)}, {"finish_reason", finish}}}}};
}

// A GLM-style stream: content in pieces, a tool call in fragments, usage in
// the last chunk.
std::string
glm_stream()
{
  std::string s = event(delta_chunk({{"role", "assistant"}, {"content", ""}}));
  s += event(delta_chunk({{"content", "Hel"}}));
  s += event(delta_chunk({{"reasoning_content", "thinking..."}}));
  s += event(delta_chunk({{"content", "lo \xc3\xa9"}}));
  s += event(delta_chunk({{"tool_calls",
                           {{{"index", 0},
                             {"id", "call_1"},
                             {"type", "function"},
                             {"function", {{"name", "lookup"}, {"arguments", ""}}}}}}}));
  s += event(
      delta_chunk({{"tool_calls", {{{"index", 0}, {"function", {{"arguments", "{\"q\":"}}}}}}}));
  s += event(delta_chunk({{"tool_calls",
                           {{{"index", 1},
                             {"id", "call_2"},
                             {"type", "function"},
                             {"function", {{"name", "other"}}}}}}}));
  s += event(
      delta_chunk({{"tool_calls", {{{"index", 0}, {"function", {{"arguments", "\"x\"}"}}}}}}}));
  json last = delta_chunk(json::object(), "tool_calls");
  last["usage"] = {{"prompt_tokens", 10},
                   {"completion_tokens", 5},
                   {"total_tokens", 15},
                   {"prompt_tokens_details", {{"cached_tokens", 4}}}};
  s += event(last);
  s += "data: [DONE]\n\n";
  return s;
}

std::variant<ChatReply, StreamProblem>
assemble(std::string_view body, std::size_t piece)
{
  ChatStream stream("asked");
  for (std::size_t at = 0; at < body.size(); at += piece) {
    if (!stream.feed(body.substr(at, piece))) {
      break;
    }
  }
  return stream.finish();
}

} // namespace

TEST_CASE("stream: content, finish reason, tool-call fragments and usage assemble like the "
          "non-streamed reply",
          "[core][stream]")
{
  const std::string body = glm_stream();
  for (std::size_t piece = 1; piece <= body.size(); piece = piece < 8 ? piece + 1 : piece * 2) {
    INFO("pieces of " << piece << " bytes");
    const auto outcome = assemble(body, piece);
    REQUIRE(std::holds_alternative<ChatReply>(outcome));
    const auto& reply = std::get<ChatReply>(outcome);
    CHECK(reply.content == "Hello \xc3\xa9");
    CHECK(reply.model == "glm-4.5");
    CHECK(reply.finish_reason == "tool_calls");
    REQUIRE(reply.tool_calls.size() == 2);
    CHECK(reply.tool_calls[0].id == "call_1");
    CHECK(reply.tool_calls[0].type == "function");
    CHECK(reply.tool_calls[0].name == "lookup");
    CHECK(reply.tool_calls[0].arguments == "{\"q\":\"x\"}");
    CHECK(reply.tool_calls[1].name == "other");
    CHECK(reply.usage["prompt_tokens"] == 10);
    CHECK(reply.usage["prompt_tokens_details"]["cached_tokens"] == 4);
  }
}

TEST_CASE("stream: the same answer streamed and whole gives equal replies", "[core][stream]")
{
  const json whole = {
      {"model", "kimi-k2-0905-preview"},
      {"choices", {{{"index", 0}, {"message", {{"content", "abc"}}}, {"finish_reason", "stop"}}}},
      {"usage", {{"prompt_tokens", 3}, {"completion_tokens", 1}, {"cached_tokens", 2}}}};
  const auto expected = std::get<ChatReply>(openai::parse_chat_reply(whole.dump(), "asked"));
  // Kimi puts usage inside the finishing choice.
  json last = {{"model", "kimi-k2-0905-preview"},
               {"choices",
                {{{"index", 0},
                  {"delta", json::object()},
                  {"finish_reason", "stop"},
                  {"usage", whole["usage"]}}}}};
  const std::string body = event({{"model", "kimi-k2-0905-preview"},
                                  {"choices", {{{"index", 0}, {"delta", {{"content", "ab"}}}}}}}) +
                           event({{"choices", {{{"index", 0}, {"delta", {{"content", "c"}}}}}}}) +
                           event(last) + "data: [DONE]\n\n";
  const auto streamed = std::get<ChatReply>(assemble(body, 5));
  CHECK(streamed.content == expected.content);
  CHECK(streamed.model == expected.model);
  CHECK(streamed.finish_reason == expected.finish_reason);
  CHECK(streamed.usage == expected.usage);
  CHECK(streamed.tool_calls.empty());
}

TEST_CASE("stream: OpenAI's include_usage chunk (no choices) carries the usage", "[core][stream]")
{
  const std::string body = event(delta_chunk({{"content", "x"}}, "stop")) +
                           event({{"choices", json::array()}, {"usage", {{"prompt_tokens", 7}}}}) +
                           "data: [DONE]\n\n";
  const auto reply = std::get<ChatReply>(assemble(body, 3));
  CHECK(reply.usage["prompt_tokens"] == 7);
}

TEST_CASE("stream: an error event mid-stream is a provider error with its message and code",
          "[core][stream]")
{
  const std::string body =
      event(delta_chunk({{"content", "partial"}})) +
      event({{"error", {{"message", "too many requests"}, {"code", "1302"}}}}) +
      event(delta_chunk({{"content", "never seen"}})) + "data: [DONE]\n\n";
  ChatStream stream("asked");
  CHECK_FALSE(stream.feed(body));
  CHECK(stream.failed());
  const auto problem = std::get<StreamProblem>(stream.finish());
  CHECK(problem.kind == StreamProblem::Kind::provider_error);
  CHECK(problem.what == "too many requests");
  CHECK(problem.code == "1302");
  CHECK(problem.event.find("1302") != std::string::npos);
}

TEST_CASE("stream: a malformed event fails the stream", "[core][stream]")
{
  const std::string body = event(delta_chunk({{"content", "a"}})) + "data: {\"choices\":[\n\n";
  const auto problem = std::get<StreamProblem>(assemble(body, 4));
  CHECK(problem.kind == StreamProblem::Kind::malformed);
  CHECK(std::get<StreamProblem>(assemble("data: [1,2]\n\n", 2)).kind ==
        StreamProblem::Kind::malformed);
}

TEST_CASE("stream: without [DONE] a finished answer stands and an unfinished one is incomplete",
          "[core][stream]")
{
  const std::string finished =
      event(delta_chunk({{"content", "all"}})) + event(delta_chunk(json::object(), "stop"));
  const auto reply = std::get<ChatReply>(assemble(finished, 7));
  CHECK(reply.content == "all");
  CHECK(reply.finish_reason == "stop");

  const std::string cut = event(delta_chunk({{"content", "half"}}));
  CHECK(std::get<StreamProblem>(assemble(cut, 7)).kind == StreamProblem::Kind::incomplete);
  CHECK(std::get<StreamProblem>(assemble("data: [DONE]\n\n", 7)).kind ==
        StreamProblem::Kind::no_choices);
}

TEST_CASE("stream: a 1 MB single event is read whole; progress counters grow", "[core][stream]")
{
  std::string big;
  big.assign(std::size_t{1} << 20U, 'q');
  const std::string body = event(delta_chunk({{"content", big}}, "stop")) + "data: [DONE]\n\n";
  ChatStream stream("asked", std::size_t{4} << 20U);
  CHECK_FALSE(stream.started());
  for (std::size_t at = 0; at < body.size(); at += 65536) {
    REQUIRE(stream.feed(std::string_view(body).substr(at, 65536)));
  }
  CHECK(stream.started());
  CHECK(stream.done());
  CHECK(stream.received() == big.size());
  CHECK(std::get<ChatReply>(stream.finish()).content.size() == big.size());

  ChatStream small("asked", 1000);
  CHECK_FALSE(small.feed(body));
  CHECK(std::get<StreamProblem>(small.finish()).kind == StreamProblem::Kind::too_large);
}
