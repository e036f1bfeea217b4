#include "tests/support/fake_upstream.hpp"

#include "net/upstream/ssl_init.hpp"
#include "tests/support/fake_sse.hpp"
#include "tests/support/handler_factory.hpp"

#include <Poco/Net/Context.h>
#include <Poco/Net/HTMLForm.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerRequestImpl.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/MessageHeader.h>
#include <Poco/Net/PartHandler.h>
#include <Poco/Net/SecureServerSocket.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/StreamCopier.h>
#include <Poco/ThreadPool.h>
#include <nlohmann/json.hpp>

#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <csignal>
#include <deque>
#include <set>
#include <sstream>
#include <thread>

namespace exai::test {

namespace {

// Parses a whole decimal int into `value`; false when `text` is not one.
bool
parse_int(std::string_view text, int& value)
{
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return ec == std::errc() && end == text.data() + text.size();
}

std::string
error_body(int status, const std::string& message, const std::string& type)
{
  return nlohmann::json{
      {"error", {{"message", message}, {"type", type}, {"code", std::to_string(status)}}}}
      .dump();
}

// What the fake reads from a chat request body.
struct ChatShape {
  std::string prompt;       // text of the last user message (text parts joined)
  int images = 0;           // image_url parts in that message
  std::string last_role;    // role of the last message
  bool kimi_search = false; // tools has Kimi's builtin_function $web_search
  bool glm_search = false;  // tools has GLM's web_search tool
  bool functions = false;   // tools has a function tool
};

ChatShape
chat_shape(const nlohmann::json& body)
{
  ChatShape shape;
  if (const auto messages = body.find("messages"); messages != body.end() && messages->is_array()) {
    for (const auto& message : *messages) {
      if (!message.is_object()) {
        continue;
      }
      shape.last_role = message.value("role", "");
      if (shape.last_role != "user") {
        continue;
      }
      const auto content = message.find("content");
      shape.prompt.clear();
      shape.images = 0;
      if (content == message.end()) {
        continue;
      }
      if (content->is_string()) {
        shape.prompt = content->get<std::string>();
        continue;
      }
      if (!content->is_array()) {
        continue;
      }
      for (const auto& part : *content) {
        if (!part.is_object()) {
          continue;
        }
        if (part.value("type", "") == "text" && part.contains("text") && part["text"].is_string()) {
          shape.prompt += part["text"].get<std::string>();
        } else if (part.value("type", "") == "image_url") {
          ++shape.images;
        }
      }
    }
  }
  if (const auto tools = body.find("tools"); tools != body.end() && tools->is_array()) {
    for (const auto& tool : *tools) {
      if (!tool.is_object()) {
        continue;
      }
      const std::string type = tool.value("type", "");
      shape.glm_search = shape.glm_search || type == "web_search";
      shape.functions = shape.functions || type == "function";
      shape.kimi_search =
          shape.kimi_search ||
          (type == "builtin_function" && tool.contains("function") &&
           tool["function"].is_object() && tool["function"].value("name", "") == "$web_search");
    }
  }
  return shape;
}

// The directives that set one member of FakeBehavior, by the member's type:
// [[name]] sets a flag, [[name=N]] a number or a delay in milliseconds.
template <typename T> struct Directive {
  std::string_view name;
  T FakeBehavior::*member;
};

constexpr Directive<bool> kFlagDirectives[] = {{"glm_1302", &FakeBehavior::glm_1302},
                                               {"hang", &FakeBehavior::hang},
                                               {"malformed", &FakeBehavior::malformed},
                                               {"truncate", &FakeBehavior::truncate},
                                               {"reset", &FakeBehavior::reset},
                                               {"echo_auth", &FakeBehavior::echo_auth},
                                               {"minimal", &FakeBehavior::minimal},
                                               {"close", &FakeBehavior::close},
                                               {"search_forever", &FakeBehavior::search_forever},
                                               {"sse_error", &FakeBehavior::sse_error},
                                               {"no_done", &FakeBehavior::no_done}};

constexpr Directive<int> kIntDirectives[] = {{"status", &FakeBehavior::status},
                                             {"fail_times", &FakeBehavior::fail_times},
                                             {"pad", &FakeBehavior::pad},
                                             {"cached", &FakeBehavior::cached},
                                             {"big_event", &FakeBehavior::big_event},
                                             {"chunks", &FakeBehavior::chunks}};

constexpr Directive<std::chrono::milliseconds> kDelayDirectives[] = {
    {"sleep_ms", &FakeBehavior::latency},
    {"stall_ms", &FakeBehavior::stall},
    {"chunk_ms", &FakeBehavior::chunk_delay}};

template <typename T, std::size_t N>
const Directive<T>*
find_directive(const Directive<T> (&table)[N], std::string_view name)
{
  for (const auto& directive : table) {
    if (directive.name == name) {
      return &directive;
    }
  }
  return nullptr;
}

} // namespace

FakeBehavior
parse_directives(std::string_view prompt, FakeBehavior base)
{
  std::size_t pos = 0;
  while ((pos = prompt.find("[[", pos)) != std::string_view::npos) {
    const auto end = prompt.find("]]", pos + 2);
    if (end == std::string_view::npos) {
      break;
    }
    const std::string_view directive = prompt.substr(pos + 2, end - pos - 2);
    pos = end + 2;
    const auto eq = directive.find('=');
    const std::string_view name = directive.substr(0, eq);
    // A plain int plus a flag: GCC 12 -O2 reports a false maybe-uninitialized
    // when a std::optional<int> is used here.
    int value = 0;
    bool has_value = false;
    if (eq != std::string_view::npos) {
      has_value = parse_int(directive.substr(eq + 1), value);
    }
    if (const auto* flag = find_directive(kFlagDirectives, name)) {
      base.*flag->member = true;
    } else if (const auto* number = find_directive(kIntDirectives, name)) {
      if (has_value) {
        base.*number->member = value;
      }
    } else if (const auto* delay = find_directive(kDelayDirectives, name)) {
      if (has_value) {
        base.*delay->member = std::chrono::milliseconds(value);
      }
    } else if (name == "retry_after" && has_value) {
      base.retry_after = value;
    } else if (name == "call_tool" && eq != std::string_view::npos) {
      base.call_tool = std::string(directive.substr(eq + 1));
    } else if (name == "reply" && eq != std::string_view::npos) {
      base.reply = std::string(directive.substr(eq + 1));
    }
  }
  return base;
}

struct FakeUpstream::Impl {
  Options options;
  mutable std::mutex mutex;
  mutable std::condition_variable changed; // requests, concurrency, hangs, stop
  FakeBehavior default_behavior;           // guarded by mutex
  std::deque<FakeBehavior> queued;         // guarded by mutex
  std::map<std::string, int> seen_prompts; // guarded by mutex (fail_times)
  std::vector<RecordedRequest> recorded;   // guarded by mutex
  std::set<std::string> peers;             // guarded by mutex (connect_delay)
  std::uint64_t hang_generation = 0;       // guarded by mutex
  int current = 0;                         // guarded by mutex
  int peak = 0;                            // guarded by mutex
  bool stopping = false;                   // guarded by mutex
  std::atomic<std::uint64_t> ids{0};
  struct StoredFile {
    std::string filename;
    std::string content;
    std::string purpose;
    std::int64_t created_at = 0;
  };
  std::map<std::string, StoredFile> files; // guarded by mutex (Files API)
  std::uint64_t file_ids = 0;              // guarded by mutex

  // Declared before the server: destroyed after it (the server uses the pool).
  std::unique_ptr<Poco::ThreadPool> pool;
  std::unique_ptr<Poco::Net::HTTPServer> server;

  // Waits up to `delay`, or until stop(). Returns false when stopping.
  bool pause(std::chrono::milliseconds delay)
  {
    std::unique_lock lock(mutex);
    return !changed.wait_for(lock, delay, [this] { return stopping; });
  }

  // Waits for a release_hangs() after the request arrived (`generation`), or
  // stop(). Returns false when stopping. Counting from arrival, not from
  // here, lets a test release every request it has seen arrive.
  bool hang(std::uint64_t generation)
  {
    std::unique_lock lock(mutex);
    changed.wait(lock, [&] { return stopping || hang_generation != generation; });
    return !stopping;
  }

  void handle(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response);
  // Streams `events` with the behaviour's pauses, stall or truncation.
  void send_events(Poco::Net::HTTPServerRequest& request,
                   Poco::Net::HTTPServerResponse& response,
                   const std::vector<std::string>& events,
                   const FakeBehavior& behavior,
                   bool fail);
  // The Files API and GLM's web search; false when `path` is none of theirs.
  bool handle_files(const RecordedRequest& record,
                    const std::string& path,
                    Poco::Net::HTTPServerRequest& request,
                    Poco::Net::HTTPServerResponse& response);
};

namespace {

// Drops the connection: FIN now, RST when Poco closes it (linger 0).
void
drop_connection(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response)
{
  response.setKeepAlive(false);
  auto& socket = static_cast<Poco::Net::HTTPServerRequestImpl&>(request).socket();
  const int fd = socket.impl()->sockfd();
  const ::linger abortive{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &abortive, sizeof abortive);
  ::shutdown(fd, SHUT_RDWR);
}

void
send_json(Poco::Net::HTTPServerResponse& response, int status, const std::string& body)
{
  response.setStatus(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(status));
  response.setContentType("application/json");
  response.setContentLength(static_cast<std::streamsize>(body.size()));
  response.send() << body;
}

class Handler : public Poco::Net::HTTPRequestHandler {
public:
  explicit Handler(FakeUpstream::Impl& impl)
      : impl_(impl)
  {
  }
  void handleRequest(Poco::Net::HTTPServerRequest& request,
                     Poco::Net::HTTPServerResponse& response) override
  {
    impl_.handle(request, response);
  }

private:
  FakeUpstream::Impl& impl_;
};

using Factory = HandlerFactory<Handler, FakeUpstream::Impl>;

bool
ends_with(std::string_view text, std::string_view suffix)
{
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

} // namespace

namespace {

// The "file" part of a multipart upload.
class FilePart : public Poco::Net::PartHandler {
public:
  void handlePart(const Poco::Net::MessageHeader& header, std::istream& stream) override
  {
    std::string disposition;
    Poco::Net::NameValueCollection params;
    Poco::Net::MessageHeader::splitParameters(
        header.get("Content-Disposition", ""), disposition, params);
    filename = params.get("filename", "");
    Poco::StreamCopier::copyToString(stream, content);
  }
  std::string filename;
  std::string content;
};

nlohmann::json
file_json(const std::string& id,
          const std::string& filename,
          std::size_t bytes,
          const std::string& purpose,
          std::int64_t created_at)
{
  return {{"id", id},
          {"object", "file"},
          {"bytes", bytes},
          {"created_at", created_at},
          {"filename", filename},
          {"purpose", purpose},
          {"status", "ok"}};
}

} // namespace

bool
FakeUpstream::Impl::handle_files(const RecordedRequest& record,
                                 const std::string& path,
                                 Poco::Net::HTTPServerRequest& request,
                                 Poco::Net::HTTPServerResponse& response)
{
  const auto files_at = path.find("/files");
  if (record.method == "POST" && ends_with(path, "/web_search")) {
    const auto body = nlohmann::json::parse(record.body, nullptr, false);
    const std::string query = body.is_object() ? body.value("search_query", "") : "";
    const int count = body.is_object() ? body.value("count", 10) : 10;
    const FakeBehavior behavior = parse_directives(query);
    if (behavior.status != 200) {
      send_json(response,
                behavior.status,
                nlohmann::json{
                    {"error", {{"code", "1214"}, {"message", "fake web search refused: " + query}}}}
                    .dump());
      return true;
    }
    nlohmann::json results = nlohmann::json::array();
    for (int i = 1; i <= count; ++i) {
      results.push_back({{"title", "Result " + std::to_string(i) + " for " + query},
                         {"link", "https://search.invalid/" + std::to_string(i)},
                         {"content", "fake content about " + query},
                         {"media", "fake"},
                         {"publish_date", "2026-01-01"}});
    }
    send_json(response,
              200,
              nlohmann::json{{"id", "web-search-" + std::to_string(++ids)},
                             {"created", 1700000000},
                             {"search_intent", {{{"query", query}, {"intent", "SEARCH_ALL"}}}},
                             {"search_result", results}}
                  .dump());
    return true;
  }
  if (files_at == std::string::npos) {
    return false;
  }
  const std::string rest = path.substr(files_at + 6); // after "/files"
  if (record.method == "POST" && rest.empty()) {
    std::istringstream body(record.body);
    Poco::Net::HTMLForm form;
    FilePart part;
    try {
      form.load(request, body, part);
    } catch (const Poco::Exception& e) {
      send_json(response,
                400,
                error_body(400, "bad multipart body: " + e.displayText(), "invalid_request_error"));
      return true;
    }
    const FakeBehavior behavior = parse_directives(part.content);
    if (behavior.status != 200) {
      send_json(response,
                behavior.status,
                error_body(behavior.status,
                           "fake upload refused: " + part.filename,
                           "invalid_request_error"));
      return true;
    }
    std::string id;
    const std::int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count();
    {
      const std::lock_guard lock(mutex);
      id = "file-fake-" + std::to_string(++file_ids);
      files[id] = StoredFile{part.filename, part.content, form.get("purpose", ""), now};
    }
    send_json(
        response,
        200,
        file_json(id, part.filename, part.content.size(), form.get("purpose", ""), now).dump());
    return true;
  }
  if (record.method == "GET" && rest.empty()) {
    nlohmann::json data = nlohmann::json::array();
    {
      const std::lock_guard lock(mutex);
      for (const auto& [id, file] : files) {
        data.push_back(
            file_json(id, file.filename, file.content.size(), file.purpose, file.created_at));
      }
    }
    send_json(response, 200, nlohmann::json{{"object", "list"}, {"data", data}}.dump());
    return true;
  }
  std::string id = rest.size() > 1 ? rest.substr(1) : "";
  const bool content = ends_with(id, "/content");
  if (content) {
    id.resize(id.size() - 8);
  }
  std::optional<StoredFile> found;
  {
    const std::lock_guard lock(mutex);
    if (const auto it = files.find(id); it != files.end()) {
      found = it->second;
      if (record.method == "DELETE") {
        files.erase(it);
      }
    }
  }
  if (!found) {
    send_json(
        response, 404, error_body(404, "file " + id + " not found", "resource_not_found_error"));
    return true;
  }
  if (record.method == "DELETE") {
    send_json(
        response, 200, nlohmann::json{{"id", id}, {"object", "file"}, {"deleted", true}}.dump());
  } else if (content) {
    send_json(response,
              200,
              nlohmann::json{{"content", found->content},
                             {"file_type", "text/plain"},
                             {"filename", found->filename},
                             {"title", ""},
                             {"type", "file"}}
                  .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  } else {
    send_json(
        response,
        200,
        file_json(id, found->filename, found->content.size(), found->purpose, found->created_at)
            .dump());
  }
  return true;
}

void
FakeUpstream::Impl::handle(Poco::Net::HTTPServerRequest& request,
                           Poco::Net::HTTPServerResponse& response)
{
  RecordedRequest record;
  record.method = request.getMethod();
  record.path = request.getURI();
  record.peer = request.clientAddress().toString();
  for (const auto& [name, value] : request) {
    record.headers[name] = value;
  }
  Poco::StreamCopier::copyToString(request.stream(), record.body);
  bool new_connection = false;
  std::uint64_t arrival_generation = 0;
  {
    const std::lock_guard lock(mutex);
    if (options.record) {
      recorded.push_back(record);
    }
    peak = std::max(peak, ++current);
    new_connection = peers.insert(record.peer).second;
    arrival_generation = hang_generation;
  }
  changed.notify_all();
  if (options.keep_alive_hint > 0) {
    response.set("Keep-Alive", "timeout=" + std::to_string(options.keep_alive_hint));
  }
  struct Leave {
    Impl& impl;
    ~Leave()
    {
      {
        const std::lock_guard lock(impl.mutex);
        --impl.current;
      }
      impl.changed.notify_all();
    }
  } leave{*this};

  if (new_connection && options.connect_delay.count() > 0 && !pause(options.connect_delay)) {
    drop_connection(request, response);
    return;
  }

  const std::string path = record.path.substr(0, record.path.find('?'));
  if (!options.expected_key.empty() &&
      request.get("Authorization", "") != "Bearer " + options.expected_key) {
    send_json(
        response, 401, error_body(401, "Invalid Authentication", "invalid_authentication_error"));
    return;
  }
  if (record.method == "GET" && ends_with(path, "/models")) {
    send_json(
        response,
        200,
        nlohmann::json{{"object", "list"}, {"data", {{{"id", "fake-model"}, {"object", "model"}}}}}
            .dump());
    return;
  }
  if (handle_files(record, path, request, response)) {
    return;
  }
  if (record.method != "POST" || !ends_with(path, "/chat/completions")) {
    send_json(response, 404, error_body(404, "no such endpoint: " + path, "not_found"));
    return;
  }

  const auto json = nlohmann::json::parse(record.body, nullptr, false);
  std::string model = "unknown";
  ChatShape shape;
  bool stream = false;
  if (!json.is_discarded() && json.is_object()) {
    model = json.value("model", model);
    shape = chat_shape(json);
    stream = json.contains("stream") && json["stream"].is_boolean() && json["stream"].get<bool>();
  }
  if (stream && options.record) {
    const std::lock_guard lock(mutex);
    // Recorded before the answer, which may never come.
    for (auto it = recorded.rbegin(); it != recorded.rend(); ++it) {
      if (it->peer == record.peer && it->body == record.body) {
        it->streamed = true;
        break;
      }
    }
  }
  const std::string& prompt = shape.prompt;

  FakeBehavior behavior;
  bool fail = true;
  {
    const std::lock_guard lock(mutex);
    if (!queued.empty()) {
      behavior = queued.front();
      queued.pop_front();
    } else {
      behavior = default_behavior;
    }
    behavior = parse_directives(prompt, behavior);
    if (behavior.fail_times >= 0) {
      fail = seen_prompts[prompt]++ < behavior.fail_times;
    }
  }
  const bool failure_asked = behavior.status != 200 || behavior.glm_1302 || behavior.reset ||
                             behavior.truncate || behavior.malformed || behavior.stall.count() > 0;
  if (behavior.fail_times >= 0 && fail && !failure_asked) {
    behavior.status = 503;
  }

  if (behavior.latency.count() > 0 && !pause(behavior.latency)) {
    drop_connection(request, response);
    return;
  }
  if (behavior.hang && !hang(arrival_generation)) {
    drop_connection(request, response);
    return;
  }
  if (fail) {
    if (behavior.reset) {
      drop_connection(request, response);
      return;
    }
    if (behavior.retry_after) {
      response.set("Retry-After", std::to_string(*behavior.retry_after));
    }
    if (behavior.glm_1302) {
      send_json(response,
                429,
                nlohmann::json{{"error",
                                {{"code", "1302"},
                                 {"message",
                                  "High concurrency usage of this API, please reduce "
                                  "concurrency or contact customer service to increase limits"}}}}
                    .dump());
      return;
    }
    if (behavior.status != 200) {
      send_json(response,
                behavior.status,
                error_body(behavior.status,
                           "fake upstream status " + std::to_string(behavior.status) +
                               (behavior.echo_auth
                                    ? std::string(static_cast<std::size_t>(behavior.pad), 'x') +
                                          " (you sent " + request.get("Authorization", "") + ")"
                                    : std::string()),
                           "fake_error"));
      return;
    }
  }

  const std::uint64_t id = ++ids;
  response.set("Msh-Request-Id", "fake-req-" + std::to_string(id));
  if (request.has("Idempotency-Key")) {
    response.set("Idempotency-Key", request.get("Idempotency-Key"));
  }
  if (request.has("Msh-Context-Cache-Token")) {
    response.set("Msh-Context-Cache-Token-Saved", request.get("Msh-Context-Cache-Token"));
  }
  // From the messages only: a streamed and a plain request count the same.
  const auto prompt_tokens = static_cast<int>((json.is_object() && json.contains("messages")
                                                   ? json["messages"].dump().size()
                                                   : record.body.size()) /
                                                  4 +
                                              1);
  std::string content = "echo: " + prompt;
  if (shape.images > 0) {
    content += " [images: " + std::to_string(shape.images) + "]";
  }
  if (behavior.big_event > 0) {
    content.append(static_cast<std::size_t>(behavior.big_event), 'z');
  }
  nlohmann::json message = {{"role", "assistant"}, {"content", content}};
  std::string finish_reason = "stop";
  if (!behavior.call_tool.empty() && shape.functions && shape.last_role != "tool") {
    message["content"] = "";
    message["tool_calls"] = {
        {{"index", 0},
         {"id", "call-" + std::to_string(id)},
         {"type", "function"},
         {"function", {{"name", behavior.call_tool}, {"arguments", R"({"query":"fake"})"}}}}};
    finish_reason = "tool_calls";
  } else if (shape.kimi_search && (shape.last_role != "tool" || behavior.search_forever)) {
    // Kimi's builtin $web_search: the model asks, the client echoes the
    // arguments back as a tool message, then the model answers.
    message["content"] = "";
    message["tool_calls"] = {
        {{"index", 0},
         {"id", "search-" + std::to_string(id)},
         {"type", "builtin_function"},
         {"function",
          {{"name", "$web_search"},
           {"arguments",
            R"({"search_result":{"search_id":"fake-search"},"usage":{"total_tokens":7}})"}}}}};
    finish_reason = "tool_calls";
  } else if (shape.kimi_search) {
    content += " [searched]";
    message["content"] = content;
  }
  const auto completion_tokens = static_cast<int>(content.size() / 4 + 1);
  nlohmann::json usage = {{"prompt_tokens", prompt_tokens},
                          {"completion_tokens", completion_tokens},
                          {"total_tokens", prompt_tokens + completion_tokens}};
  if (behavior.cached > 0) {
    if (model.rfind("kimi", 0) == 0 || model.rfind("moonshot", 0) == 0) {
      usage["cached_tokens"] = behavior.cached;
    } else {
      usage["prompt_tokens_details"] = {{"cached_tokens", behavior.cached}};
    }
  }
  nlohmann::json reply = {
      {"id", "chatcmpl-fake-" + std::to_string(id)},
      {"object", "chat.completion"},
      {"created", 1700000000},
      {"model", model},
      {"choices", {{{"index", 0}, {"message", message}, {"finish_reason", finish_reason}}}},
      {"usage", usage}};
  if (shape.glm_search) {
    reply["web_search"] = {{{"title", "Fake result"},
                            {"link", "https://search.invalid/1"},
                            {"content", "a fake search result"}}};
  }
  if (behavior.reply) {
    reply["choices"][0]["message"]["content"] = *behavior.reply;
  }
  if (stream) {
    send_events(request, response, sse_events(reply, behavior, fail), behavior, fail);
    return;
  }
  std::string body = reply.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (behavior.minimal) {
    body = nlohmann::json{{"choices", {{{"message", {{"content", content}}}}}}}.dump(
        -1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  if (fail && behavior.malformed) {
    body = R"({"id":"chatcmpl-fake","choices":[{"message":{"content":"oops)";
  }
  if (fail && (behavior.truncate || behavior.stall.count() > 0)) {
    // Half the promised body, then the connection goes: at once when
    // truncating, after the stall otherwise.
    response.setStatus(Poco::Net::HTTPResponse::HTTP_OK);
    response.setContentType("application/json");
    response.setContentLength(static_cast<std::streamsize>(body.size()));
    std::ostream& out = response.send();
    out.write(body.data(), static_cast<std::streamsize>(body.size() / 2));
    out.flush();
    if (!behavior.truncate) {
      pause(behavior.stall);
    }
    drop_connection(request, response);
    return;
  }
  if (behavior.close) {
    // The answer promises keep-alive; the close comes after it, as when a
    // server ends an idle connection.
    response.setStatus(Poco::Net::HTTPResponse::HTTP_OK);
    response.setContentType("application/json");
    response.setContentLength(static_cast<std::streamsize>(body.size()));
    std::ostream& out = response.send();
    out << body;
    out.flush();
    response.setKeepAlive(false);
    auto& socket = static_cast<Poco::Net::HTTPServerRequestImpl&>(request).socket();
    ::shutdown(socket.impl()->sockfd(), SHUT_RDWR);
    return;
  }
  send_json(response, 200, body);
}

void
FakeUpstream::Impl::send_events(Poco::Net::HTTPServerRequest& request,
                                Poco::Net::HTTPServerResponse& response,
                                const std::vector<std::string>& events,
                                const FakeBehavior& behavior,
                                bool fail)
{
  response.setStatus(Poco::Net::HTTPResponse::HTTP_OK);
  response.setContentType("text/event-stream");
  response.setChunkedTransferEncoding(true);
  response.set("Cache-Control", "no-cache");
  std::ostream& out = response.send();
  const std::size_t cut =
      fail && (behavior.stall.count() > 0 || behavior.truncate) ? events.size() / 2 : events.size();
  for (std::size_t i = 0; i < cut; ++i) {
    if (i > 0 && behavior.chunk_delay.count() > 0 && !pause(behavior.chunk_delay)) {
      drop_connection(request, response);
      return;
    }
    out << events[i];
    out.flush();
    if (!out) {
      return; // the client went away (cancelled)
    }
  }
  if (cut < events.size()) {
    if (behavior.stall.count() > 0) {
      pause(behavior.stall);
    }
    drop_connection(request, response);
  }
}

FakeUpstream::FakeUpstream()
    : FakeUpstream(Options{})
{
}

FakeUpstream::FakeUpstream(Options options)
    : impl_(std::make_unique<Impl>())
{
  // A client that goes away mid-stream must cost a write error, not the
  // process (Poco's send() on Linux does not pass MSG_NOSIGNAL).
  std::signal(SIGPIPE, SIG_IGN);
  impl_->options = std::move(options);
  impl_->default_behavior = impl_->options.behavior;
  const Poco::Net::SocketAddress address("127.0.0.1", impl_->options.port);
  std::unique_ptr<Poco::Net::ServerSocket> socket;
  if (!impl_->options.cert_file.empty() && !impl_->options.key_file.empty()) {
    net::ensure_ssl_initialized();
    const Poco::Net::Context::Ptr context =
        new Poco::Net::Context(Poco::Net::Context::TLS_SERVER_USE,
                               impl_->options.key_file,
                               impl_->options.cert_file,
                               "",
                               Poco::Net::Context::VERIFY_NONE);
    socket = std::make_unique<Poco::Net::SecureServerSocket>(address, 128, context);
  } else {
    socket = std::make_unique<Poco::Net::ServerSocket>(address, 128);
  }
  port_ = socket->address().port();
  auto* params = new Poco::Net::HTTPServerParams; // Poco takes ownership
  params->setMaxThreads(impl_->options.max_threads);
  params->setMaxQueued(1024);
  params->setKeepAlive(true);
  params->setTimeout(Poco::Timespan(30, 0));
  params->setKeepAliveTimeout(Poco::Timespan(
      static_cast<Poco::Timespan::TimeDiff>(impl_->options.idle_close.count()) * 1000));
  impl_->pool = std::make_unique<Poco::ThreadPool>(2, impl_->options.max_threads + 2);
  impl_->server = std::make_unique<Poco::Net::HTTPServer>(
      new Factory(*impl_), *impl_->pool, *socket, params); // Poco takes ownership of the factory
  impl_->server->start();
}

FakeUpstream::~FakeUpstream()
{
  stop();
}

std::string
FakeUpstream::base_url() const
{
  const bool tls = !impl_->options.cert_file.empty() && !impl_->options.key_file.empty();
  return std::string(tls ? "https" : "http") + "://127.0.0.1:" + std::to_string(port_) + "/v1";
}

void
FakeUpstream::set_behavior(const FakeBehavior& behavior)
{
  const std::lock_guard lock(impl_->mutex);
  impl_->default_behavior = behavior;
}

void
FakeUpstream::enqueue(const FakeBehavior& behavior)
{
  const std::lock_guard lock(impl_->mutex);
  impl_->queued.push_back(behavior);
}

void
FakeUpstream::release_hangs()
{
  {
    const std::lock_guard lock(impl_->mutex);
    ++impl_->hang_generation;
  }
  impl_->changed.notify_all();
}

std::vector<RecordedRequest>
FakeUpstream::requests() const
{
  const std::lock_guard lock(impl_->mutex);
  return impl_->recorded;
}

std::size_t
FakeUpstream::request_count() const
{
  const std::lock_guard lock(impl_->mutex);
  return impl_->recorded.size();
}

int
FakeUpstream::current_concurrency() const
{
  const std::lock_guard lock(impl_->mutex);
  return impl_->current;
}

int
FakeUpstream::accepted_connections() const
{
  return impl_->server ? impl_->server->totalConnections() : 0;
}

int
FakeUpstream::open_connections() const
{
  return impl_->server ? impl_->server->currentConnections() : 0;
}

bool
FakeUpstream::wait_for_open_connections_at_most(int count, std::chrono::milliseconds timeout) const
{
  // Poco's TCPServer tells no one when a connection ends, so this polls the
  // count (a condition with a deadline, not a guess at how long it takes).
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (open_connections() > count) {
    if (std::chrono::steady_clock::now() >= deadline) {
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

int
FakeUpstream::peak_concurrency() const
{
  const std::lock_guard lock(impl_->mutex);
  return impl_->peak;
}

void
FakeUpstream::reset_stats()
{
  const std::lock_guard lock(impl_->mutex);
  impl_->recorded.clear();
  impl_->peak = impl_->current;
  impl_->seen_prompts.clear();
  impl_->queued.clear();
  impl_->peers.clear();
}

bool
FakeUpstream::wait_for_requests(std::size_t count, std::chrono::milliseconds timeout) const
{
  std::unique_lock lock(impl_->mutex);
  return impl_->changed.wait_for(lock, timeout, [&] { return impl_->recorded.size() >= count; });
}

bool
FakeUpstream::wait_for_concurrency(int level, std::chrono::milliseconds timeout) const
{
  std::unique_lock lock(impl_->mutex);
  return impl_->changed.wait_for(lock, timeout, [&] { return impl_->current >= level; });
}

void
FakeUpstream::stop()
{
  if (!impl_ || !impl_->server) {
    return;
  }
  {
    const std::lock_guard lock(impl_->mutex);
    impl_->stopping = true;
  }
  impl_->changed.notify_all();
  impl_->server->stopAll(true);
  impl_->pool->joinAll();
  impl_->server.reset();
}

} // namespace exai::test
