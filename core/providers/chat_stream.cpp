#include "core/providers/chat_stream.hpp"

#include "core/providers/chat_chunk.hpp"

#include <utility>

namespace exai::core::openai {

namespace {

using nlohmann::json;

const json*
member(const json& object, const char* key)
{
  if (!object.is_object()) {
    return nullptr;
  }
  const auto it = object.find(key);
  return it == object.end() || it->is_null() ? nullptr : &*it;
}

std::string_view
string_member(const json& object, const char* key)
{
  const json* value = member(object, key);
  return value != nullptr && value->is_string()
             ? std::string_view(value->get_ref<const std::string&>())
             : std::string_view();
}

// A chunk's members that matter; the rest (id, object, created,
// system_fingerprint…) are scanned but never built into the tree — every
// streamed piece of every answer passes through here.
bool
keep_member(int depth, json::parse_event_t event, json& parsed)
{
  if (event != json::parse_event_t::key || depth != 1) {
    return true;
  }
  const auto& key = parsed.get_ref<const std::string&>();
  return key == "choices" || key == "model" || key == "usage" || key == "error" ||
         key == "web_search";
}

} // namespace

ChatStream::ChatStream(std::string requested_model, std::size_t max_event_bytes, bool general_only)
    : requested_model_(std::move(requested_model))
    , parser_(max_event_bytes)
    , general_only_(general_only)
{
}

void
ChatStream::fail(StreamProblem::Kind kind, std::string what, std::string_view event)
{
  if (!problem_) {
    problem_ = StreamProblem{kind, std::move(what), {}, std::string(event)};
  }
}

bool
ChatStream::feed(std::string_view bytes)
{
  if (problem_ || done_) {
    return !problem_;
  }
  // Whatever follows [DONE] in the same piece does not matter, however big.
  if (!parser_.feed(bytes, [this](const sse::Event& event) { on_event(event); }) && !done_) {
    fail(StreamProblem::Kind::too_large, "an event exceeds the size limit");
  }
  return !problem_;
}

void
ChatStream::on_event(const sse::Event& event)
{
  if (problem_ || done_) {
    return;
  }
  if (event.data == "[DONE]") {
    done_ = true;
    return;
  }
  if (event.type != "error" && !general_only_) {
    SimpleChunk simple;
    if (read_simple_chunk(event.data, simple)) {
      if (!simple.model.empty()) {
        model_ = std::move(simple.model);
      }
      saw_choice_ = saw_choice_ || simple.saw_choice;
      if (!simple.finish_reason.empty()) {
        finish_reason_ = std::move(simple.finish_reason);
      }
      content_.append(simple.content);
      received_ += simple.content.size() + simple.reasoning_bytes;
      started_ = started_ || !simple.content.empty() || simple.reasoning_bytes > 0;
      return;
    }
  }
  const json chunk = json::parse(event.data, keep_member, false);
  if (chunk.is_discarded() || !chunk.is_object()) {
    fail(StreamProblem::Kind::malformed, "malformed event", event.data);
    return;
  }
  if (const json* error = member(chunk, "error"); error != nullptr || event.type == "error") {
    StreamProblem problem{
        StreamProblem::Kind::provider_error, "error event", {}, std::string(event.data)};
    if (error != nullptr && error->is_object()) {
      if (const auto message = string_member(*error, "message"); !message.empty()) {
        problem.what = std::string(message);
      }
      if (const json* code = member(*error, "code")) {
        problem.code = code->is_string()           ? code->get<std::string>()
                       : code->is_number_integer() ? std::to_string(code->get<long long>())
                                                   : std::string();
      }
    } else if (error != nullptr && error->is_string()) {
      problem.what = error->get<std::string>();
    }
    problem_ = std::move(problem);
    return;
  }
  if (const auto model = string_member(chunk, "model"); !model.empty()) {
    model_ = std::string(model);
  }
  if (const json* usage = member(chunk, "usage"); usage != nullptr && usage->is_object()) {
    usage_ = *usage;
  }
  if (const json* search = member(chunk, "web_search")) {
    web_search_ = *search;
  }
  if (const json* choices = member(chunk, "choices"); choices != nullptr && choices->is_array()) {
    for (const auto& choice : *choices) {
      // The answer is choice 0, as in the non-streamed reply.
      const json* index = member(choice, "index");
      if (index == nullptr || (index->is_number_integer() && index->get<long long>() == 0)) {
        on_choice(choice);
      }
    }
  }
}

void
ChatStream::on_choice(const json& choice)
{
  if (!choice.is_object()) {
    return;
  }
  saw_choice_ = true;
  if (const auto reason = string_member(choice, "finish_reason"); !reason.empty()) {
    finish_reason_ = std::string(reason);
  }
  if (const json* usage = member(choice, "usage"); usage != nullptr && usage->is_object()) {
    usage_ = *usage; // Kimi
  }
  // Some providers end with a whole `message` instead of deltas.
  const json* delta = member(choice, "delta");
  if (delta == nullptr) {
    delta = member(choice, "message");
  }
  if (delta == nullptr || !delta->is_object()) {
    return;
  }
  if (const auto text = string_member(*delta, "content"); !text.empty()) {
    content_.append(text);
    received_ += text.size();
    started_ = true;
  }
  if (const auto reasoning = string_member(*delta, "reasoning_content"); !reasoning.empty()) {
    received_ += reasoning.size();
    started_ = true;
  }
  const json* calls = member(*delta, "tool_calls");
  if (calls == nullptr || !calls->is_array()) {
    return;
  }
  auto next_index = static_cast<long long>(tool_calls_.size());
  for (const auto& fragment : *calls) {
    if (!fragment.is_object()) {
      continue;
    }
    const json* index = member(fragment, "index");
    const long long at =
        index != nullptr && index->is_number_integer() ? index->get<long long>() : next_index++;
    ToolCall& call = tool_calls_[at];
    if (const auto id = string_member(fragment, "id"); !id.empty()) {
      call.id = std::string(id);
    }
    if (const auto type = string_member(fragment, "type"); !type.empty()) {
      call.type = std::string(type);
    }
    started_ = true;
    const json* function = member(fragment, "function");
    if (function == nullptr || !function->is_object()) {
      continue;
    }
    if (const auto name = string_member(*function, "name"); !name.empty()) {
      call.name = std::string(name);
    }
    if (const json* arguments = member(*function, "arguments")) {
      if (arguments->is_string()) {
        call.arguments += arguments->get_ref<const std::string&>();
        received_ += arguments->get_ref<const std::string&>().size();
      } else {
        call.arguments = arguments->dump(-1, ' ', false, json::error_handler_t::replace);
      }
    }
  }
}

std::variant<ChatReply, StreamProblem>
ChatStream::finish()
{
  if (!problem_ && !done_ &&
      !parser_.finish([this](const sse::Event& event) { on_event(event); })) {
    fail(StreamProblem::Kind::too_large, "an event exceeds the size limit");
  }
  if (problem_) {
    return std::move(*problem_);
  }
  if (!done_ && finish_reason_.empty()) {
    return StreamProblem{StreamProblem::Kind::incomplete, "the stream ended before [DONE]", {}, {}};
  }
  if (!saw_choice_) {
    return StreamProblem{StreamProblem::Kind::no_choices, "no choices", {}, {}};
  }
  ChatReply reply;
  reply.content = std::move(content_);
  reply.model = model_.empty() ? requested_model_ : std::move(model_);
  reply.finish_reason = std::move(finish_reason_);
  reply.usage = std::move(usage_);
  reply.web_search = std::move(web_search_);
  for (auto& [index, call] : tool_calls_) {
    reply.tool_calls.push_back(std::move(call));
  }
  return reply;
}

} // namespace exai::core::openai
