#include "core/mcp/mcp_prompts.hpp"

#include <catch2/catch.hpp>

namespace mcp = exai::core::mcp;
using nlohmann::json;

namespace {

const json kTools = json::array(
    {{{"name", "chat"},
      {"description", "General chat with a model. Long second sentence."},
      {"inputSchema",
       {{"type", "object"},
        {"properties",
         {{"model", {{"enum", {"auto", "glm-4.6", "glm-4.5-flash", "kimi-k2"}}}},
          {"thinking_mode", {{"enum", {"minimal", "low", "medium", "high", "max"}}}}}}}}},
     {{"name", "analyze"}, {"description", "Step-by-step analysis."}}});

json
get(const json& params)
{
  return json::parse(mcp::prompt_get_response(3, params, kTools));
}

} // namespace

TEST_CASE("prompts/list has one prompt per tool plus continue, with arguments",
          "[core][mcp_prompts]")
{
  const auto list = mcp::prompts_list_result(kTools)["prompts"];
  REQUIRE(list.size() == 3);
  CHECK(list[0]["name"] == "chat");
  CHECK(list[0]["description"] ==
        "Ask the client's model to use exai's chat tool. General chat with a model.");
  CHECK(list[2]["name"] == "continue");
  std::vector<std::string> names;
  for (const auto& arg : list[0]["arguments"]) {
    names.push_back(arg["name"]);
  }
  CHECK(names == std::vector<std::string>{"prompt", "model", "thinking_mode"});
  CHECK(list[2]["arguments"][0]["name"] == "continuation_id");
  CHECK(list[2]["arguments"][0]["required"] == true);
}

TEST_CASE("prompts/get renders the user message from the arguments", "[core][mcp_prompts]")
{
  CHECK(get({{"name", "chat"}})["result"]["messages"][0]["content"]["text"] ==
        "Use the exai tool chat.");
  CHECK(get({{"name", "analyze"},
             {"arguments",
              {{"model", "glm-4.6"},
               {"thinking_mode", "high"},
               {"prompt", "x"}}}})["result"]["messages"][0]["content"]["text"] ==
        "Use the exai tool analyze with model \"glm-4.6\" and thinking_mode \"high\" for the "
        "following:\n\nx");
  const auto cont = get({{"name", "continue"}, {"arguments", {{"continuation_id", "c-1"}}}});
  CHECK(cont["result"]["messages"][0]["role"] == "user");
  CHECK(cont["result"]["messages"][0]["content"]["text"].get<std::string>().find("\"c-1\"") !=
        std::string::npos);
}

TEST_CASE("prompts/get refuses an unknown prompt and bad arguments with -32602 naming them",
          "[core][mcp_prompts]")
{
  const auto unknown = get({{"name", "nope"}});
  CHECK(unknown["id"] == 3);
  CHECK(unknown["error"]["code"] == -32602);
  CHECK(unknown["error"]["data"]["name"] == "nope");
  const auto no_id = get({{"name", "continue"}});
  CHECK(no_id["error"]["data"]["argument"] == "continuation_id");
  const auto not_string = get({{"name", "chat"}, {"arguments", {{"model", 5}}}});
  CHECK(not_string["error"]["data"]["argument"] == "model");
  CHECK(get({{"name", "chat"}, {"arguments", "x"}})["error"]["code"] == -32602);
}

TEST_CASE("completion/complete offers a prompt's model and thinking mode values by prefix",
          "[core][mcp_prompts]")
{
  const auto complete = [](const json& ref, const std::string& name, const std::string& value) {
    return json::parse(
        mcp::completion_response(9,
                                 {{"ref", ref}, {"argument", {{"name", name}, {"value", value}}}},
                                 kTools))["result"]["completion"];
  };
  const json chat = {{"type", "ref/prompt"}, {"name", "chat"}};
  CHECK(complete(chat, "model", "glm") ==
        json{{"values", {"glm-4.6", "glm-4.5-flash"}}, {"total", 2}, {"hasMore", false}});
  CHECK(complete(chat, "thinking_mode", "m")["values"] == json{"minimal", "medium", "max"});
  CHECK(complete({{"type", "ref/prompt"}, {"name", "continue"}}, "model", "k")["values"] ==
        json{"kimi-k2"});
  // Anything else: an empty answer, not an error.
  CHECK(complete(chat, "prompt", "x")["values"].empty());
  CHECK(complete({{"type", "ref/prompt"}, {"name", "nope"}}, "model", "")["values"].empty());
  CHECK(complete({{"type", "ref/resource"}, {"uri", "x"}}, "model", "")["total"] == 0);
}
