#include "core/providers/chat_chunk.hpp"
#include "core/providers/chat_stream.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace exai::core;
using exai::core::openai::ChatStream;
using exai::core::openai::read_simple_chunk;
using exai::core::openai::SimpleChunk;
using exai::core::openai::StreamProblem;

TEST_CASE("a content delta is read without a tree", "[core][openai][chat_chunk]")
{
  SimpleChunk chunk;
  REQUIRE(read_simple_chunk(
      R"({"id":"c1","object":"chat.completion.chunk","created":1,"model":"glm-4.6",)"
      R"("choices":[{"index":0,"delta":{"role":"assistant","content":"Hel\"lo"},)"
      R"("finish_reason":null,"logprobs":{"content":[{"token":"x"}]}}],"system_fingerprint":null})",
      chunk));
  CHECK(chunk.model == "glm-4.6");
  CHECK(chunk.saw_choice);
  CHECK(chunk.content == "Hel\"lo");
  CHECK(chunk.finish_reason.empty());
  REQUIRE(read_simple_chunk(
      R"({"choices":[{"delta":{"reasoning_content":"think"},"finish_reason":"stop"}]})", chunk));
  CHECK(chunk.reasoning_bytes == 5);
  CHECK(chunk.finish_reason == "stop");
  // Choice 1 is not the answer; a message counts when there is no delta.
  REQUIRE(read_simple_chunk(
      R"({"choices":[{"index":1,"delta":{"content":"no"}},{"message":{"content":"yes"},"index":0}]})",
      chunk));
  CHECK(chunk.content == "yes");
}

TEST_CASE("chunks with anything but simple members are left to the general reading",
          "[core][openai][chat_chunk]")
{
  SimpleChunk chunk;
  for (const std::string data : {
           R"({"error":{"message":"quota","code":"1302"}})",
           R"({"error":"quota"})",
           R"({"choices":[],"usage":{"total_tokens":9}})",
           R"({"choices":[{"delta":{},"usage":{"total_tokens":9}}]})",
           R"({"web_search":[{"title":"t"}],"choices":[]})",
           R"({"choices":[{"delta":{"tool_calls":[{"index":0,"id":"t1"}]}}]})",
           R"({"choices":[{"delta":{"content":"a","content":"b"}}]})",
           R"({"model":"a","model":"b","choices":[]})",
           R"({"choices":[{"delta":{"content":"a"}}],"choices":[]})",
           R"([{"choices":[]}])",
           R"("text")",
           R"({"choices":[{"delta":{"content":"a"}}]} trailing)",
           R"({"choices":[{"delta":{"content":"a"})",
       }) {
    CAPTURE(data);
    CHECK_FALSE(read_simple_chunk(data, chunk));
  }
}

namespace {

struct Reading {
  std::string content;
  std::string model;
  std::string finish_reason;
  std::string usage;
  std::size_t tool_calls = 0;
  std::size_t received = 0;
  bool started = false;
  int problem = -1;
};

Reading
read_stream(const std::string& body, bool general_only)
{
  ChatStream stream("asked", std::size_t{1} << 20U, general_only);
  stream.feed(body);
  Reading out;
  out.received = stream.received();
  out.started = stream.started();
  auto result = stream.finish();
  if (auto* reply = std::get_if<ChatReply>(&result)) {
    out.content = reply->content;
    out.model = reply->model;
    out.finish_reason = reply->finish_reason;
    out.usage = reply->usage.dump();
    out.tool_calls = reply->tool_calls.size();
  } else {
    out.problem = static_cast<int>(std::get<StreamProblem>(result).kind);
  }
  return out;
}

} // namespace

TEST_CASE("streams read with and without the simple-chunk reader give the same reply",
          "[core][openai][chat_chunk]")
{
  const std::vector<std::string> events = {
      R"({"model":"m1","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]})",
      R"({"choices":[{"index":0,"delta":{"content":"Hello \u00e9"}}]})",
      R"({"choices":[{"index":0,"delta":{"reasoning_content":"hmm","content":null}}]})",
      R"({"choices":[{"index":"0","delta":{"content":"skipped: index is a string"}}]})",
      R"({"choices":[{"index":0.0,"delta":{"content":"skipped: index is a float"}}]})",
      R"({"choices":[{"index":null,"delta":{"content":" world"}}]})",
      R"({"choices":[{"delta":"not an object","message":{"content":"not used"}}]})",
      R"({"choices":[{"delta":null,"message":{"content":"!"}}]})",
      R"({"choices":[7,null,[1],{"delta":{"content":"."}}]})",
      R"({"choices":{"index":0},"model":{"not":"a string"}})",
      R"({"choices":[{"delta":{"tool_calls":[{"index":0,"id":"t1","function":{"name":"f","arguments":"{}"}}]}}]})",
      R"({"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"total_tokens":3}})",
  };
  // Every prefix of the stream, each with and without [DONE].
  std::string body;
  for (const auto& data : events) {
    body += "data: " + data + "\n\n";
    for (const std::string& tail : {std::string(), std::string("data: [DONE]\n\n")}) {
      CAPTURE(body + tail);
      const Reading fast = read_stream(body + tail, false);
      const Reading general = read_stream(body + tail, true);
      CHECK(fast.content == general.content);
      CHECK(fast.model == general.model);
      CHECK(fast.finish_reason == general.finish_reason);
      CHECK(fast.usage == general.usage);
      CHECK(fast.tool_calls == general.tool_calls);
      CHECK(fast.received == general.received);
      CHECK(fast.started == general.started);
      CHECK(fast.problem == general.problem);
    }
  }
  const Reading all = read_stream(body + "data: [DONE]\n\n", false);
  CHECK(all.content == "Hello \xc3\xa9 world!.");
  CHECK(all.model == "m1");
  CHECK(all.finish_reason == "stop");
  CHECK(all.tool_calls == 1);
}
