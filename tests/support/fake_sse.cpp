#include "tests/support/fake_sse.hpp"

#include <algorithm>

namespace exai::test {

namespace {

using nlohmann::json;

std::string
event(const json& data)
{
  return "data: " + data.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
}

// `text` in `pieces` parts, never splitting a UTF-8 character.
std::vector<std::string>
split_text(const std::string& text, int pieces)
{
  std::vector<std::string> out;
  const std::size_t step =
      std::max<std::size_t>(1, text.size() / static_cast<std::size_t>(std::max(1, pieces)));
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = std::min(text.size(), start + step);
    while (end < text.size() && (static_cast<unsigned char>(text[end]) & 0xC0U) == 0x80U) {
      ++end;
    }
    out.push_back(text.substr(start, end - start));
    start = end;
  }
  return out;
}

} // namespace

std::vector<std::string>
sse_events(const json& reply, const FakeBehavior& behavior, bool fail)
{
  const std::string model = reply.value("model", "");
  const bool kimi = model.rfind("kimi", 0) == 0 || model.rfind("moonshot", 0) == 0;
  const json& choice = reply["choices"][0];
  const json& message = choice["message"];
  const json head = {{"id", reply["id"]},
                     {"object", "chat.completion.chunk"},
                     {"created", reply["created"]},
                     {"model", model}};
  const auto chunk = [&](json delta, json finish = nullptr) {
    json out = head;
    out["choices"] = json::array(
        {{{"index", 0}, {"delta", std::move(delta)}, {"finish_reason", std::move(finish)}}});
    return out;
  };

  std::vector<std::string> events = {": fake upstream stream\n\n",
                                     event(chunk({{"role", "assistant"}, {"content", ""}}))};
  const std::string content = message.value("content", "");
  const auto pieces = split_text(content, behavior.big_event > 0 ? 1 : behavior.chunks);
  for (std::size_t i = 0; i < pieces.size(); ++i) {
    events.push_back(event(chunk({{"content", pieces[i]}})));
    if (i == 0 && behavior.sse_error) {
      events.push_back(event({{"error",
                               {{"message", "fake upstream error mid-stream"},
                                {"type", "fake_error"},
                                {"code", "500"}}}}));
      return events;
    }
    if (i == 0 && fail && behavior.malformed) {
      events.emplace_back("data: {\"id\":\"chatcmpl-fake\",\"choices\":[{\"delta\":\n\n");
      return events;
    }
  }
  if (const auto calls = message.find("tool_calls"); calls != message.end()) {
    for (const auto& call : *calls) {
      const json index = call.value("index", 0);
      const std::string arguments = call["function"].value("arguments", "");
      events.push_back(event(
          chunk({{"tool_calls",
                  {{{"index", index},
                    {"id", call["id"]},
                    {"type", call["type"]},
                    {"function", {{"name", call["function"]["name"]}, {"arguments", ""}}}}}}})));
      for (const auto& part : split_text(arguments, 2)) {
        events.push_back(event(
            chunk({{"tool_calls", {{{"index", index}, {"function", {{"arguments", part}}}}}}})));
      }
    }
  }
  json last = chunk(json::object(), choice["finish_reason"]);
  if (kimi) {
    last["choices"][0]["usage"] = reply["usage"];
  } else {
    last["usage"] = reply["usage"];
  }
  if (const auto search = reply.find("web_search"); search != reply.end()) {
    last["web_search"] = *search;
  }
  events.push_back(event(last));
  if (!behavior.no_done) {
    events.emplace_back("data: [DONE]\n\n");
  }
  return events;
}

} // namespace exai::test
