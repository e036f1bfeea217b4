#include "core/calls/engine.hpp"
#include "tests/core/calls/engine_fixture.hpp"
#include "tests/support/race.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <thread>
#include <vector>

using namespace exai::core;
using namespace std::chrono_literals;
using exai::test::RecordingSink;
using nlohmann::json;

namespace {

// A ChatBackend the test steers: prompts starting with "block" wait until
// released or stopped; "fail" returns a provider error.
class FakeChat final : public ChatBackend {
public:
  ChatOutcome
  complete(std::string_view provider, const ChatRequest& request, std::stop_token stop) override
  {
    const std::string prompt = request.messages.back().content;
    {
      const std::lock_guard lock(mutex_);
      ++calls_;
      peak_ = std::max(peak_, ++active_);
      last_request_ = request;
      providers_.emplace_back(provider);
    }
    changed_.notify_all();
    ChatReply reply;
    reply.content = "echo: " + prompt;
    reply.model = request.model;
    reply.finish_reason = "stop";
    reply.usage = json::object();
    reply.upstream_latency = 1ms;
    ChatOutcome outcome = reply;
    if (prompt.rfind("block", 0) == 0) {
      std::unique_lock lock(mutex_);
      std::condition_variable_any cv;
      const bool released = changed_.wait_for(lock, stop, 30s, [&] { return released_; });
      if (!released) {
        outcome = ChatFailure{Errc::cancelled, "stopped", json::object()};
      }
    } else if (prompt.rfind("fail", 0) == 0) {
      outcome = ChatFailure{Errc::provider_error, "upstream said 500", {{"status", 500}}};
    } else if (prompt.rfind("glm500", 0) == 0 && provider == "glm") {
      outcome = ChatFailure{Errc::provider_error, "GLM returned HTTP 503", {{"status", 503}}};
    } else if (prompt.rfind("glmdown", 0) == 0 && provider == "glm") {
      outcome = ChatFailure{Errc::provider_unavailable, "GLM is unavailable: circuit open", {}};
    } else if (prompt.rfind("glm400", 0) == 0 && provider == "glm") {
      outcome = ChatFailure{Errc::provider_error, "GLM rejected the request", {{"status", 400}}};
    }
    {
      const std::lock_guard lock(mutex_);
      --active_;
    }
    changed_.notify_all();
    return outcome;
  }
  std::string circuit_state(std::string_view) const override { return "closed"; }

  void release()
  {
    const std::lock_guard lock(mutex_);
    released_ = true;
    changed_.notify_all();
  }
  bool wait_active(int n, std::chrono::milliseconds limit = 10s)
  {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, limit, [&] { return active_ == n; });
  }
  int calls() const
  {
    const std::lock_guard lock(mutex_);
    return calls_;
  }
  int peak() const
  {
    const std::lock_guard lock(mutex_);
    return peak_;
  }
  ChatRequest last_request() const
  {
    const std::lock_guard lock(mutex_);
    return last_request_;
  }
  std::vector<std::string> providers() const
  {
    const std::lock_guard lock(mutex_);
    return providers_;
  }

private:
  mutable std::mutex mutex_;
  std::condition_variable_any changed_;
  int calls_ = 0;
  int active_ = 0;
  int peak_ = 0;
  bool released_ = false;
  ChatRequest last_request_;
  std::vector<std::string> providers_;
};

struct Harness {
  explicit Harness(Settings::Map env = {}, SharedStore* store = nullptr)
      : config(make_config(std::move(env)))
      , providers(ProviderRegistry::build(
            Settings({}, {{"KIMI_API_KEY", "kimi-test-key"}, {"GLM_API_KEY", "glm-test-key"}}, {})))
      , engine(std::make_unique<Engine>(
            EngineDeps{config, providers, process_tools(), chat, nullptr, nullptr, store}))
  {
  }
  static DaemonConfig make_config(Settings::Map env)
  {
    env.emplace("EXAI_WS_PROGRESS_INTERVAL_SECS", "0.05");
    env.emplace("EXAI_WS_ACQUIRE_TIMEOUT_SECS", "0.2");
    return load_daemon_config(Settings({}, std::move(env), {}));
  }
  void call(const std::string& id,
            const std::string& tool,
            json args,
            const std::shared_ptr<CallSink>& to,
            const std::string& session = "s1")
  {
    engine->submit({id, tool, std::move(args), session, "owner"}, to);
  }
  // Waits until nothing is in flight and every scope is back to zero.
  bool drained(std::chrono::milliseconds limit = 10s) const
  {
    return exai::test::engine_drained(*engine, limit);
  }

  DaemonConfig config;
  FakeChat chat;
  ProviderRegistry providers;
  std::unique_ptr<Engine> engine;
};

json
envelope_of(const json& res)
{
  return json::parse(res["outputs"][0]["text"].get<std::string>());
}

} // namespace

TEST_CASE("a call produces progress, ack and exactly one result, in order", "[core][engine]")
{
  Harness h;
  auto sink = std::make_shared<RecordingSink>();
  h.call("r1", "version", json::object(), sink);
  const json res = sink->result("r1");
  REQUIRE(res.contains("outputs"));
  const auto frames = sink->frames();
  REQUIRE(frames.size() == 3);
  CHECK(frames[0]["op"] == "progress");
  CHECK(frames[0]["note"] == "accepted, awaiting provider/session capacity");
  CHECK(frames[0]["name"] == "version");
  CHECK(frames[1]["op"] == "call_tool_ack");
  CHECK(frames[1]["accepted"] == true);
  CHECK(frames[1]["timeout"] == 270.0);
  CHECK(frames[2]["op"] == "call_tool_res");
  CHECK(res["text"] == res["outputs"][0]["text"]);
  const json env = envelope_of(res);
  CHECK(env["status"] == "success");
  CHECK(env["content_type"] == "json");
  CHECK(env["metadata"]["tool_name"] == "version");
  CHECK(json::parse(env["content"].get<std::string>())["version"] == EXAI_VERSION);
  CHECK(h.drained());
}

TEST_CASE("an unknown tool or bad arguments fail with the request id", "[core][engine]")
{
  Harness h;
  auto sink = std::make_shared<RecordingSink>();
  h.call("r1", "nope", json::object(), sink);
  CHECK(sink->result("r1")["error"]["code"] == "TOOL_NOT_FOUND");
  h.call("r2", "chat", {{"prompt", "hi"}, {"temperature", 7}}, sink);
  CHECK(sink->result("r2")["error"]["code"] == "VALIDATION_ERROR");
  h.call("r3", "chat", {{"prompt", "hi"}, {"model", "gpt-4"}}, sink);
  CHECK(sink->result("r3")["error"]["code"] == "VALIDATION_ERROR");
  h.call("r4", "chat", json::object(), sink);
  CHECK(sink->result("r4")["error"]["code"] == "VALIDATION_ERROR");
  CHECK(h.chat.calls() == 0);
  CHECK(h.drained());
}

TEST_CASE("the engine matches tool names exactly; suffixes go where requests are parsed",
          "[core][engine]")
{
  Harness h;
  auto sink = std::make_shared<RecordingSink>();
  h.call("r1", "version_EXAI-WS", json::object(), sink);
  CHECK(sink->result("r1")["error"]["code"] == "TOOL_NOT_FOUND");
  h.call("r2", "version", json::object(), sink);
  CHECK(sink->result("r2").contains("outputs"));
}

TEST_CASE("chat reaches the model's provider and offers a continuation", "[core][engine]")
{
  Harness h;
  auto sink = std::make_shared<RecordingSink>();
  h.call("r1", "chat", {{"prompt", "hello"}, {"model", "kimi-k2"}}, sink);
  const json env = envelope_of(sink->result("r1"));
  CHECK(env["status"] == "continuation_available");
  CHECK(env["content"] == "echo: hello");
  CHECK(env["metadata"]["provider_used"] == "kimi");
  CHECK(env["metadata"]["model_used"] == "kimi-k2-0905-preview");
  const std::string cid = env["continuation_offer"]["continuation_id"];
  CHECK(env["continuation_offer"]["remaining_turns"] == 19);

  h.call("r2", "chat", {{"prompt", "again"}, {"continuation_id", cid}, {"model", "kimi-k2"}}, sink);
  const json env2 = envelope_of(sink->result("r2"));
  CHECK(env2["continuation_offer"]["remaining_turns"] == 18);
  const auto request = h.chat.last_request();
  REQUIRE(request.messages.size() == 4); // system, user, assistant, user
  CHECK(request.messages[1].content == "hello");
  CHECK(request.messages[2].content == "echo: hello");

  h.call("r3", "chat", {{"prompt", "x"}, {"continuation_id", "unknown"}}, sink);
  CHECK(sink->result("r3")["error"]["code"] == "VALIDATION_ERROR");
  CHECK(h.drained());
}

TEST_CASE("a conversation ends at its turn limit", "[core][engine]")
{
  Harness h(Settings::Map{{"EXAI_CONVERSATION_MAX_TURNS", "2"}});
  auto sink = std::make_shared<RecordingSink>();
  h.call("r1", "chat", {{"prompt", "one"}}, sink);
  const std::string cid = envelope_of(sink->result("r1"))["continuation_offer"]["continuation_id"];
  h.call("r2", "chat", {{"prompt", "two"}, {"continuation_id", cid}}, sink);
  const json env = envelope_of(sink->result("r2"));
  CHECK(env["status"] == "success");
  CHECK(env["continuation_offer"].is_null());
  h.call("r3", "chat", {{"prompt", "three"}, {"continuation_id", cid}}, sink);
  CHECK_THAT(sink->result("r3")["error"]["message"].get<std::string>(),
             Catch::Contains("limit of 2 turns"));
}

TEST_CASE("a provider error becomes an error result, not a hang", "[core][engine]")
{
  Harness h;
  auto sink = std::make_shared<RecordingSink>();
  h.call("r1", "chat", {{"prompt", "fail please"}}, sink);
  const json res = sink->result("r1");
  CHECK(res["error"]["code"] == "PROVIDER_ERROR");
  CHECK(res["error"]["details"]["status"] == 500);
  CHECK(h.drained());
  CHECK(h.engine->stats().counters.failed == 1);
}

TEST_CASE("a full provider scope rejects with OVER_CAPACITY naming it", "[core][engine]")
{
  Harness h(Settings::Map{{"EXAI_WS_GLM_MAX_INFLIGHT", "1"}});
  auto sink = std::make_shared<RecordingSink>();
  // Pinned models: no fallback.
  h.call("r1", "chat", {{"prompt", "block 1"}, {"model", "glm-4.5-flash"}}, sink);
  REQUIRE(h.chat.wait_active(1));
  h.call("r2", "chat", {{"prompt", "block 2"}, {"model", "glm-4.5-flash"}}, sink, "s2");
  const json res = sink->result("r2");
  CHECK(res["error"]["code"] == "OVER_CAPACITY");
  CHECK(res["error"]["details"]["scope"] == "provider");
  CHECK(res["error"]["details"]["provider"] == "glm");
  CHECK(res["error"]["details"]["retry_after"].is_number());
  CHECK(sink->count("progress", "r2") >= 2); // accepted + waiting note
  CHECK(h.chat.peak() == 1);
  h.chat.release();
  CHECK(sink->result("r1").contains("outputs"));
  CHECK(h.drained());
  CHECK(h.engine->stats().counters.rejected.at("provider") == 1);
}

TEST_CASE("an auto call whose provider stays full moves once to the other provider",
          "[core][engine][fallback]")
{
  Harness h(Settings::Map{{"EXAI_WS_GLM_MAX_INFLIGHT", "1"}});
  auto sink = std::make_shared<RecordingSink>();
  h.call("r1", "chat", {{"prompt", "block 1"}, {"model", "glm-4.5-flash"}}, sink);
  REQUIRE(h.chat.wait_active(1));
  h.call("r2", "chat", {{"prompt", "moved"}, {"model", "auto"}}, sink, "s2");
  const json env = envelope_of(sink->result("r2"));
  CHECK(env["metadata"]["provider_used"] == "kimi");
  CHECK(env["metadata"]["model_used"] == "kimi-k2-turbo-preview");
  CHECK(env["metadata"]["fallback_from"] == "glm-4.5-flash");
  CHECK_THAT(env["metadata"]["model_selection"]["fallback_reason"].get<std::string>(),
             Catch::Contains("capacity"));
  h.chat.release();
  CHECK(sink->result("r1").contains("outputs"));
  CHECK(h.drained());
  CHECK(h.engine->stats().counters.rejected.at("provider") == 0);
}

TEST_CASE("an auto call falls back on 5xx and an open circuit, never when pinned",
          "[core][engine][fallback]")
{
  Harness h;
  auto sink = std::make_shared<RecordingSink>();
  for (const std::string prompt : {"glm500 x", "glmdown y"}) {
    CAPTURE(prompt);
    const std::string id = "auto-" + prompt;
    h.call(id, "chat", {{"prompt", prompt}}, sink);
    const json env = envelope_of(sink->result(id));
    CHECK(env["metadata"]["provider_used"] == "kimi");
    CHECK(env["metadata"]["fallback_from"] == "glm-4.5-flash");
    CHECK(h.drained());
  }
  CHECK(h.chat.providers() == std::vector<std::string>{"glm", "kimi", "glm", "kimi"});

  // A request error is the request's fault: no fallback.
  h.call("bad", "chat", {{"prompt", "glm400 z"}}, sink);
  CHECK(sink->result("bad")["error"]["code"] == "PROVIDER_ERROR");
  // A pinned model is what the caller asked for: no fallback either.
  h.call("pinned", "chat", {{"prompt", "glm500 w"}, {"model", "glm-4.5-flash"}}, sink);
  CHECK(sink->result("pinned")["error"]["details"]["status"] == 503);
  CHECK(h.chat.providers().size() == 6);
  CHECK(h.drained());
}

TEST_CASE("a continued conversation keeps its model when none is named", "[core][engine]")
{
  Harness h;
  auto sink = std::make_shared<RecordingSink>();
  h.call("t1", "chat", {{"prompt", "hello"}, {"model", "kimi-k2"}}, sink);
  const json first = envelope_of(sink->result("t1"));
  const std::string thread = first["continuation_offer"]["continuation_id"];
  h.call("t2", "chat", {{"prompt", "again"}, {"continuation_id", thread}}, sink);
  const json second = envelope_of(sink->result("t2"));
  CHECK(second["metadata"]["model_used"] == "kimi-k2-0905-preview");
  CHECK(second["metadata"]["provider_used"] == "kimi");
  CHECK_THAT(second["metadata"]["model_selection"]["reason"].get<std::string>(),
             Catch::Contains("continuation keeps its model"));
  CHECK(h.chat.providers().back() == "kimi");
}

TEST_CASE("unknown or out-of-range arguments are refused naming the field and the rule",
          "[core][engine]")
{
  Harness h;
  auto sink = std::make_shared<RecordingSink>();
  h.call("u1", "chat", {{"prompt", "x"}, {"promt", "typo"}}, sink);
  const json unknown = sink->result("u1")["error"];
  CHECK(unknown["code"] == "VALIDATION_ERROR");
  CHECK_THAT(unknown["message"].get<std::string>(), Catch::Contains("'promt'"));
  CHECK_THAT(unknown["message"].get<std::string>(), Catch::Contains("allowed: "));
  CHECK(unknown["details"]["field"] == "promt");
  h.call("u2", "chat", {{"prompt", "x"}, {"temperature", 1.5}}, sink);
  const json range = sink->result("u2")["error"];
  CHECK(range["details"]["field"] == "temperature");
  CHECK(range["details"]["value"] == "1.5");
  CHECK(range["details"]["rule"] == "must be from 0 to 1");
  h.call("u3", "chat", {{"prompt", "x"}, {"thinking_mode", "huge"}}, sink);
  CHECK_THAT(sink->result("u3")["error"]["message"].get<std::string>(),
             Catch::Contains("must be one of: minimal, low, medium, high, max"));
  CHECK(h.chat.calls() == 0);
  CHECK(h.drained());
}

TEST_CASE("a prompt over the transport limit asks to be resent as a file", "[core][engine]")
{
  Harness h;
  auto sink = std::make_shared<RecordingSink>();
  h.call("big", "chat", {{"prompt", std::string(100001, 'a')}}, sink);
  const json error = sink->result("big")["error"];
  CHECK(error["code"] == "RESEND_PROMPT");
  CHECK(error["details"]["limit"] == 100000);
  CHECK_THAT(error["message"].get<std::string>(), Catch::Contains("prompt.txt"));
  CHECK(h.chat.calls() == 0);
}

TEST_CASE("callers sharing one answer each get their own conversation thread", "[core][engine]")
{
  Harness h(Settings::Map{{"EXAI_WS_REUSE_SCOPE", "global"}});
  auto sink = std::make_shared<RecordingSink>();
  h.call("a", "chat", {{"prompt", "block same"}}, sink, "s1");
  REQUIRE(h.chat.wait_active(1));
  h.call("b", "chat", {{"prompt", "block same"}}, sink, "s2");
  h.chat.release();
  const json a = envelope_of(sink->result("a"));
  const json b = envelope_of(sink->result("b"));
  h.call("c", "chat", {{"prompt", "block same"}}, sink, "s3"); // from the cache
  const json c = envelope_of(sink->result("c"));
  CHECK(h.chat.calls() == 1);
  const std::string ta = a["continuation_offer"]["continuation_id"];
  const std::string tb = b["continuation_offer"]["continuation_id"];
  const std::string tc = c["continuation_offer"]["continuation_id"];
  CHECK(ta != tb);
  CHECK(tb != tc);
  CHECK(ta != tc);
  CHECK(a["content"] == b["content"]);
  // Each thread holds the shared answer and continues on its own.
  h.call("a2", "chat", {{"prompt", "next"}, {"continuation_id", ta}}, sink, "s1");
  h.call("b2", "chat", {{"prompt", "next"}, {"continuation_id", tb}}, sink, "s2");
  CHECK(envelope_of(sink->result("a2"))["continuation_offer"]["remaining_turns"] == 18);
  CHECK(envelope_of(sink->result("b2"))["continuation_offer"]["remaining_turns"] == 18);
  CHECK(h.chat.last_request().messages.size() == 4);
}

TEST_CASE("a request id repeated on one connection while running gets one result", "[core][engine]")
{
  Harness h;
  auto sink = std::make_shared<RecordingSink>();
  h.call("dup", "chat", {{"prompt", "block once"}}, sink);
  REQUIRE(h.chat.wait_active(1));
  h.call("dup", "chat", {{"prompt", "block once"}}, sink);
  h.chat.release();
  (void)sink->result("dup");
  REQUIRE(h.drained());
  CHECK(sink->count("call_tool_res", "dup") == 1);
  bool noted = false;
  for (const auto& frame : sink->frames()) {
    noted = noted || frame.value("note", "") == "duplicate request; still processing";
  }
  CHECK(noted);
}

TEST_CASE("a queued call runs when capacity frees up", "[core][engine]")
{
  Harness h(
      Settings::Map{{"EXAI_WS_SESSION_MAX_INFLIGHT", "1"}, {"EXAI_WS_ACQUIRE_TIMEOUT_SECS", "10"}});
  auto sink = std::make_shared<RecordingSink>();
  h.call("r1", "chat", {{"prompt", "block a"}}, sink);
  REQUIRE(h.chat.wait_active(1));
  h.call("r2", "chat", {{"prompt", "block b"}}, sink);
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (h.engine->stats().capacity.sessions.waiting != 1 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
  CHECK(h.engine->stats().capacity.sessions.waiting == 1);
  h.chat.release();
  CHECK(sink->result("r1").contains("outputs"));
  CHECK(sink->result("r2").contains("outputs"));
  CHECK(h.chat.peak() == 1);
  CHECK(h.drained());
}

TEST_CASE("a call hitting its deadline gets TIMEOUT and the upstream is stopped", "[core][engine]")
{
  Harness h(Settings::Map{{"EXAI_WS_CALL_TIMEOUT_SECS", "0.3"}});
  auto sink = std::make_shared<RecordingSink>();
  const auto start = std::chrono::steady_clock::now();
  h.call("r1", "chat", {{"prompt", "block forever"}}, sink);
  const json res = sink->result("r1");
  const auto took = std::chrono::steady_clock::now() - start;
  CHECK(res["error"]["code"] == "TIMEOUT");
  CHECK(took >= 300ms);
  CHECK(took < 2s);
  CHECK(h.chat.wait_active(0));
  CHECK(h.drained());
  CHECK(sink->count("call_tool_res", "r1") == 1);
  CHECK(h.engine->stats().counters.timed_out == 1);
}

TEST_CASE("cancel_tool stops the call and releases its capacity", "[core][engine]")
{
  Harness h;
  auto sink = std::make_shared<RecordingSink>();
  h.call("r1", "chat", {{"prompt", "block"}}, sink);
  REQUIRE(h.chat.wait_active(1));
  CHECK_FALSE(h.engine->cancel("other-session", "r1"));
  CHECK(h.engine->cancel("s1", "r1"));
  CHECK(sink->result("r1")["error"]["code"] == "CANCELLED");
  CHECK(h.chat.wait_active(0));
  CHECK(h.drained());
  CHECK_FALSE(h.engine->cancel("s1", "r1"));
  CHECK(sink->count("call_tool_res", "r1") == 1);
}

TEST_CASE("a finished request id is replayed without running again", "[core][engine]")
{
  Harness h;
  auto sink = std::make_shared<RecordingSink>();
  h.call("r1", "chat", {{"prompt", "once"}}, sink);
  const json first = sink->result("r1");
  auto other = std::make_shared<RecordingSink>();
  h.call("r1", "chat", {{"prompt", "once"}}, other);
  CHECK(other->result("r1") == first);
  CHECK(h.chat.calls() == 1);
  CHECK(h.engine->stats().counters.replayed == 1);
}

TEST_CASE("a finished request id reused for a different call runs that call", "[core][engine]")
{
  Harness h;
  auto sink = std::make_shared<RecordingSink>();
  h.call("1", "chat", {{"prompt", "first"}}, sink);
  CHECK(envelope_of(sink->result("1"))["content"] == "echo: first");
  auto other = std::make_shared<RecordingSink>();
  h.call("1", "chat", {{"prompt", "second"}}, other);
  CHECK(envelope_of(other->result("1"))["content"] == "echo: second");
  CHECK(h.chat.calls() == 2);
  CHECK(h.engine->stats().counters.replayed == 0);
}

TEST_CASE("a running request id sent again gets the same result on both connections",
          "[core][engine]")
{
  Harness h;
  auto a = std::make_shared<RecordingSink>();
  auto b = std::make_shared<RecordingSink>();
  h.call("r1", "chat", {{"prompt", "block"}}, a);
  REQUIRE(h.chat.wait_active(1));
  h.call("r1", "chat", {{"prompt", "block"}}, b);
  h.call("r1", "chat", {{"prompt", "different"}}, b);
  h.chat.release();
  CHECK(a->result("r1").contains("outputs"));
  CHECK(b->wait_count("call_tool_res", "r1", 2));
  const auto b_frames = b->frames();
  CHECK(b->count("call_tool_res", "r1") == 2); // DUPLICATE for the different call + the result
  CHECK(std::any_of(b_frames.begin(), b_frames.end(), [](const json& f) {
    return f.contains("error") && f["error"]["code"] == "DUPLICATE";
  }));
  CHECK(h.chat.calls() == 1);
}

TEST_CASE("identical concurrent calls share one upstream execution", "[core][engine]")
{
  Harness h(Settings::Map{{"EXAI_WS_REUSE_SCOPE", "global"}});
  auto sink = std::make_shared<RecordingSink>();
  constexpr int kCalls = 5;
  // Submitted from five threads at once, from five sessions, while the
  // upstream holds the first execution open: all five are in flight together.
  exai::test::race(kCalls, [&](int i) {
    h.call(
        "r" + std::to_string(i), "chat", {{"prompt", "block same"}}, sink, "s" + std::to_string(i));
  });
  REQUIRE(h.chat.wait_active(1));
  CHECK(h.engine->stats().inflight_calls == kCalls);
  CHECK(h.engine->stats().executions == 1);
  h.chat.release();
  for (int i = 0; i < kCalls; ++i) {
    const json res = sink->result("r" + std::to_string(i));
    CHECK(res["request_id"] == "r" + std::to_string(i));
    CHECK(envelope_of(res)["content"] == "echo: block same");
  }
  CHECK(h.chat.calls() == 1);
  CHECK(h.engine->stats().counters.coalesced == kCalls - 1);
  // And a later identical call within the TTL is answered from the cache.
  h.call("later", "chat", {{"prompt", "block same"}}, sink);
  CHECK(sink->result("later").contains("outputs"));
  CHECK(h.chat.calls() == 1);
  CHECK(h.engine->stats().counters.cache_hits == 1);
  CHECK(h.drained());
}

TEST_CASE("coalescing and reuse are off for listed tools", "[core][engine]")
{
  Harness h(Settings::Map{{"EXAI_WS_DISABLE_COALESCE_FOR_TOOLS", "chat"}});
  auto sink = std::make_shared<RecordingSink>();
  h.call("r1", "chat", {{"prompt", "same"}}, sink);
  (void)sink->result("r1");
  h.call("r2", "chat", {{"prompt", "same"}}, sink);
  (void)sink->result("r2");
  CHECK(h.chat.calls() == 2);
}

TEST_CASE("cancelling one of several coalesced callers leaves the others running", "[core][engine]")
{
  Harness h;
  auto sink = std::make_shared<RecordingSink>();
  h.call("a", "chat", {{"prompt", "block shared"}}, sink, "s1");
  h.call("b", "chat", {{"prompt", "block shared"}}, sink, "s1");
  REQUIRE(h.chat.wait_active(1));
  CHECK(h.engine->cancel("s1", "a"));
  CHECK(sink->result("a")["error"]["code"] == "CANCELLED");
  h.chat.release();
  CHECK(sink->result("b").contains("outputs"));
  CHECK(h.drained());
}

TEST_CASE("an identical call sent while the last caller's cancel is answered gets its own result",
          "[core][engine]")
{
  Harness h;
  auto sink = std::make_shared<RecordingSink>();
  auto joiner = std::make_shared<RecordingSink>();
  // The moment the cancelled call's answer goes out, before its run is
  // stopped, a client sends the same call again (from another thread, as a
  // second connection would).
  sink->before_result = [&](std::string_view request_id) {
    if (request_id == "a") {
      std::thread([&] { h.call("b", "chat", {{"prompt", "block shared"}}, joiner, "s1"); }).join();
    }
  };
  h.call("a", "chat", {{"prompt", "block shared"}}, sink, "s1");
  REQUIRE(h.chat.wait_active(1));
  CHECK(h.engine->cancel("s1", "a"));
  CHECK(sink->result("a")["error"]["code"] == "CANCELLED");
  h.chat.release();
  // Joined to the stopped run, it would never hear back and stay in flight.
  CHECK(envelope_of(joiner->result("b"))["content"] == "echo: block shared");
  CHECK(h.drained());
}

TEST_CASE("a call outlives its client and is delivered when the session resumes", "[core][engine]")
{
  Harness h;
  auto sink = std::make_shared<RecordingSink>();
  h.call("r1", "chat", {{"prompt", "block"}}, sink, "sess");
  REQUIRE(h.chat.wait_active(1));
  sink.reset(); // the client disconnected
  h.chat.release();
  REQUIRE(h.drained());
  auto resumed = std::make_shared<RecordingSink>();
  h.engine->attach_session("sess", resumed);
  CHECK(envelope_of(resumed->result("r1", 1s))["content"] == "echo: block");
}

TEST_CASE("a resumed session receives the result of a still running call", "[core][engine]")
{
  Harness h;
  auto sink = std::make_shared<RecordingSink>();
  h.call("r1", "chat", {{"prompt", "block"}}, sink, "sess");
  REQUIRE(h.chat.wait_active(1));
  sink.reset();
  auto resumed = std::make_shared<RecordingSink>();
  h.engine->attach_session("sess", resumed);
  h.chat.release();
  CHECK(resumed->result("r1").contains("outputs"));
}

TEST_CASE("heartbeat progress frames flow while a call runs and stop after its result",
          "[core][engine]")
{
  Harness h;
  auto sink = std::make_shared<RecordingSink>();
  h.call("r1", "chat", {{"prompt", "block"}}, sink);
  REQUIRE(h.chat.wait_active(1));
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (sink->count("progress", "r1") < 3 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  CHECK(sink->count("progress", "r1") >= 3);
  h.chat.release();
  (void)sink->result("r1");
  REQUIRE(h.drained());
  const auto frames = sink->frames();
  CHECK(frames.back()["op"] == "call_tool_res");
}

TEST_CASE("shutdown drains, then cancels the rest with SHUTTING_DOWN", "[core][engine]")
{
  Harness h;
  auto sink = std::make_shared<RecordingSink>();
  h.call("r1", "chat", {{"prompt", "block"}}, sink);
  REQUIRE(h.chat.wait_active(1));
  h.engine->shutdown(100ms);
  CHECK(sink->result("r1")["error"]["code"] == "SHUTTING_DOWN");
  CHECK(h.drained());
  h.call("r2", "version", json::object(), sink);
  CHECK(sink->result("r2")["error"]["code"] == "SHUTTING_DOWN");
}

TEST_CASE("shutdown lets calls that finish within the grace period complete", "[core][engine]")
{
  Harness h;
  auto sink = std::make_shared<RecordingSink>();
  h.call("r1", "chat", {{"prompt", "block"}}, sink);
  REQUIRE(h.chat.wait_active(1));
  std::thread releaser([&] {
    // Let shutdown start waiting first; the result must still be a success.
    while (h.engine->stats().accepting) {
      std::this_thread::yield();
    }
    h.chat.release();
  });
  h.engine->shutdown(10s);
  releaser.join();
  CHECK(sink->result("r1").contains("outputs"));
}

TEST_CASE("status reports capacity in use", "[core][engine]")
{
  Harness h;
  auto sink = std::make_shared<RecordingSink>();
  h.call("r1", "status", json::object(), sink);
  const json env = envelope_of(sink->result("r1"));
  const json report = json::parse(env["content"].get<std::string>());
  CHECK(report["global"]["capacity"] == 24);
  CHECK(report["global"]["in_use"] == 1); // the status call itself
  CHECK(report["providers"].size() == 2);
}

TEST_CASE("request ids belong to their session: another session's id is another call",
          "[core][engine]")
{
  Harness h;
  auto a = std::make_shared<RecordingSink>();
  auto b = std::make_shared<RecordingSink>();
  h.call("1", "chat", {{"prompt", "block for a"}}, a, "session-a");
  REQUIRE(h.chat.wait_active(1));
  // Session b uses the same request id for its own call while a's runs: no
  // DUPLICATE, and its own answer.
  h.call("1", "chat", {{"prompt", "for b"}}, b, "session-b");
  CHECK(envelope_of(b->result("1"))["content"] == "echo: for b");
  h.chat.release();
  CHECK(envelope_of(a->result("1"))["content"] == "echo: block for a");
  // Each session replays only its own result.
  auto a_again = std::make_shared<RecordingSink>();
  h.call("1", "chat", {{"prompt", "block for a"}}, a_again, "session-a");
  CHECK(envelope_of(a_again->result("1"))["content"] == "echo: block for a");
  CHECK(h.chat.calls() == 2);
  CHECK(h.drained());
}

TEST_CASE("a session resuming gets its own undelivered result, never another session's",
          "[core][engine]")
{
  Harness h;
  auto a = std::make_shared<RecordingSink>();
  a->accept_results = false; // a's connection is gone when the result arrives
  auto b = std::make_shared<RecordingSink>();
  h.call("7", "chat", {{"prompt", "block a"}}, a, "session-a");
  REQUIRE(h.chat.wait_active(1));
  h.call("7", "chat", {{"prompt", "block b"}}, b, "session-b");
  REQUIRE(h.chat.wait_active(2));
  h.chat.release();
  CHECK(envelope_of(b->result("7"))["content"] == "echo: block b");
  REQUIRE(h.drained());
  auto resumed = std::make_shared<RecordingSink>();
  h.engine->attach_session("session-a", resumed);
  CHECK(envelope_of(resumed->result("7"))["content"] == "echo: block a");
  CHECK(resumed->count("call_tool_res", "7") == 1);
}

TEST_CASE("results a connection took but never sent are delivered when the session resumes",
          "[core][engine]")
{
  Harness h;
  auto sink = std::make_shared<RecordingSink>();
  h.call("r1", "chat", {{"prompt", "hello"}}, sink, "s9");
  (void)sink->result("r1");
  h.engine->undelivered("s9", {"r1", "never-existed"});
  auto resumed = std::make_shared<RecordingSink>();
  h.engine->attach_session("s9", resumed);
  CHECK(envelope_of(resumed->result("r1"))["content"] == "echo: hello");
  CHECK(resumed->frames().size() == 1);
}

TEST_CASE("a burst in one session holds no threads and does not delay another session",
          "[core][engine]")
{
  Harness h({{"EXAI_WS_ACQUIRE_TIMEOUT_SECS", "30"}, {"EXAI_WS_SESSION_MAX_QUEUED", "1000"}});
  auto burst = std::make_shared<RecordingSink>();
  constexpr int kBurst = 600;
  for (int i = 0; i < kBurst; ++i) {
    h.call("b" + std::to_string(i),
           "chat",
           {{"prompt", "block " + std::to_string(i)}, {"model", "kimi-k2-0905-preview"}},
           burst,
           "busy");
  }
  REQUIRE(h.chat.wait_active(6)); // the Kimi provider scope
  const auto waiting = h.engine->stats();
  CHECK(waiting.queued == kBurst - 6);
  // Waiting calls are continuations, not parked threads.
  CHECK(waiting.call_threads <= 8);
  auto other = std::make_shared<RecordingSink>();
  const auto start = std::chrono::steady_clock::now();
  h.call("q", "chat", {{"prompt", "quick"}, {"model", "glm-4.5-flash"}}, other, "calm");
  CHECK(envelope_of(other->result("q", 2s))["content"] == "echo: quick");
  CHECK(std::chrono::steady_clock::now() - start < 1s);
  h.chat.release();
  for (int i = 0; i < kBurst; ++i) {
    REQUIRE(burst->result("b" + std::to_string(i), 20s).contains("outputs"));
  }
  CHECK(h.drained());
}

TEST_CASE("calls beyond a session's queue bound are refused at once with OVER_CAPACITY",
          "[core][engine]")
{
  Harness h({{"EXAI_WS_ACQUIRE_TIMEOUT_SECS", "30"}, {"EXAI_WS_SESSION_MAX_QUEUED", "4"}});
  auto sink = std::make_shared<RecordingSink>();
  // The GLM scope is 4: 4 run, 4 wait (the session's queue bound), the 9th is
  // refused without waiting.
  for (int i = 0; i < 8; ++i) {
    h.call("r" + std::to_string(i), "chat", {{"prompt", "block " + std::to_string(i)}}, sink, "s");
  }
  REQUIRE(h.chat.wait_active(4)); // GLM provider scope: 4
  const auto start = std::chrono::steady_clock::now();
  h.call("over", "chat", {{"prompt", "block over"}}, sink, "s");
  const json refused = sink->result("over", 2s);
  CHECK(std::chrono::steady_clock::now() - start < 500ms);
  CHECK(refused["error"]["code"] == "OVER_CAPACITY");
  CHECK(refused["error"]["details"]["scope"] == "session");
  CHECK(refused["error"]["message"].get<std::string>().find("EXAI_WS_SESSION_MAX_QUEUED") !=
        std::string::npos);
  h.chat.release();
  for (int i = 0; i < 8; ++i) {
    CHECK(sink->result("r" + std::to_string(i), 20s).contains("outputs"));
  }
  CHECK(h.drained());
}

TEST_CASE("stored results are bounded in bytes, not only in count", "[core][engine]")
{
  Harness h({{"EXAI_WS_RESULT_MAX_BYTES", "300000"}, {"EXAI_WS_REUSE_MAX_BYTES", "100000"}});
  auto sink = std::make_shared<RecordingSink>();
  const std::string big(50000, 'x');
  for (int i = 0; i < 40; ++i) {
    h.call("r" + std::to_string(i), "chat", {{"prompt", big + std::to_string(i)}}, sink);
    REQUIRE(sink->result("r" + std::to_string(i)).contains("outputs"));
  }
  const auto s = h.engine->stats();
  CHECK(s.cached_result_bytes <= 300000);
  CHECK(s.cached_results < 40);
  CHECK(s.cached_results >= 3);
  CHECK(s.reuse_bytes <= 100000);
  CHECK(h.drained());
}

TEST_CASE("identical calls are shared within a session by default, not across sessions",
          "[core][engine]")
{
  Harness h;
  auto sink = std::make_shared<RecordingSink>();
  h.call("a1", "chat", {{"prompt", "block same"}}, sink, "one");
  REQUIRE(h.chat.wait_active(1));
  h.call("a2", "chat", {{"prompt", "block same"}}, sink, "one");   // joins a1
  h.call("b1", "chat", {{"prompt", "block same"}}, sink, "other"); // runs on its own
  REQUIRE(h.chat.wait_active(2));
  h.chat.release();
  for (const auto* id : {"a1", "a2", "b1"}) {
    CHECK(sink->result(id).contains("outputs"));
  }
  CHECK(h.chat.calls() == 2);
  CHECK(h.engine->stats().counters.coalesced == 1);
  CHECK(h.drained());
}

namespace {

// A shared store whose reads wait until opened, as a Redis that is slow or
// stalled would make them.
class GatedStore final : public SharedStore {
public:
  std::optional<std::string> get(const std::string& key) override
  {
    std::unique_lock lock(mutex_);
    ++gets_;
    changed_.notify_all();
    if (throw_anything_) {
      throw 42; // not even a std::exception
    }
    changed_.wait(lock,
                  [&] { return open_ && (held_.empty() || key.find(held_) == std::string::npos); });
    const auto it = values_.find(key);
    return it == values_.end() ? std::nullopt : std::optional<std::string>(it->second);
  }
  void put(const std::string& key, const std::string& value, std::chrono::milliseconds) override
  {
    const std::lock_guard lock(mutex_);
    values_[key] = value;
  }
  std::uint64_t round_trips() const noexcept override { return 0; }
  // Replaces every stored value (a store written by something else).
  void overwrite_all(const std::string& value)
  {
    const std::lock_guard lock(mutex_);
    for (auto& [key, stored] : values_) {
      stored = value;
    }
  }
  void open()
  {
    const std::lock_guard lock(mutex_);
    open_ = true;
    changed_.notify_all();
  }
  // Holds, even while open, the reads of keys containing `marker` until
  // release_held().
  void hold(std::string marker)
  {
    const std::lock_guard lock(mutex_);
    held_ = std::move(marker);
  }
  // Every read fails with something unexpected.
  void throw_anything()
  {
    const std::lock_guard lock(mutex_);
    throw_anything_ = true;
  }
  void release_held()
  {
    const std::lock_guard lock(mutex_);
    held_.clear();
    changed_.notify_all();
  }
  bool wait_gets(int n)
  {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, 10s, [&] { return gets_ >= n; });
  }

private:
  std::mutex mutex_;
  std::condition_variable changed_;
  bool open_ = false;
  std::string held_;
  bool throw_anything_ = false;
  int gets_ = 0;
  std::map<std::string, std::string> values_;
};

} // namespace

TEST_CASE("continued calls waiting for a slow shared store are bounded per session",
          "[core][engine]")
{
  GatedStore store; // holds every read, as a stalled Redis would
  Harness h({{"EXAI_WS_SESSION_MAX_QUEUED", "3"}}, &store);
  auto sink = std::make_shared<RecordingSink>();
  const auto continued = [&](const std::string& id,
                             const std::string& session,
                             const std::shared_ptr<RecordingSink>& to) {
    h.call(id, "chat", {{"prompt", "more"}, {"continuation_id", "bogus-" + id}}, to, session);
  };
  for (int i = 0; i < 5; ++i) {
    continued("c" + std::to_string(i), "s1", sink);
  }
  // Three wait for the store; the rest are refused at once, naming the limit.
  for (int i = 3; i < 5; ++i) {
    const json res = sink->result("c" + std::to_string(i), 2s);
    CHECK(res["error"]["code"] == "OVER_CAPACITY");
    CHECK(res["error"]["details"]["queue_full"] == true);
    CHECK_THAT(res["error"]["message"].get<std::string>(),
               Catch::Contains("EXAI_WS_SESSION_MAX_QUEUED=3"));
  }
  // Another session still gets its place in the queue.
  auto other = std::make_shared<RecordingSink>();
  continued("o1", "s2", other);
  REQUIRE(store.wait_gets(4));
  store.open();
  CHECK_THAT(other->result("o1")["error"]["message"].get<std::string>(),
             Catch::Contains("continuation_id"));
  for (int i = 0; i < 3; ++i) {
    CHECK_THAT(sink->result("c" + std::to_string(i))["error"]["message"].get<std::string>(),
               Catch::Contains("continuation_id"));
  }
  REQUIRE(h.drained());
  // Answered, they no longer count.
  continued("c5", "s1", sink);
  CHECK_THAT(sink->result("c5")["error"]["message"].get<std::string>(),
             Catch::Contains("continuation_id"));
}

TEST_CASE("past EXAI_WS_MAX_QUEUED waiting result lookups, a call runs without asking the store",
          "[core][engine]")
{
  GatedStore store; // holds every read, as a stalled Redis would
  Harness h({{"EXAI_WS_MAX_QUEUED", "3"}}, &store);
  auto sink = std::make_shared<RecordingSink>();
  for (int i = 0; i < 3; ++i) {
    h.call("r" + std::to_string(i), "chat", {{"prompt", "p" + std::to_string(i)}}, sink);
  }
  REQUIRE(store.wait_gets(3));
  // A fourth lookup would queue behind the stalled ones (a flood of calls
  // queued one each, without bound): this call runs at once instead.
  h.call("r3", "chat", {{"prompt", "p3"}}, sink);
  CHECK(envelope_of(sink->result("r3", 5s))["content"] == "echo: p3");
  store.open();
  for (int i = 0; i < 3; ++i) {
    CHECK(envelope_of(sink->result("r" + std::to_string(i)))["content"] ==
          "echo: p" + std::to_string(i));
  }
  CHECK(h.drained());
}

TEST_CASE("an identical call sent just after a replay stopped its run gets its own result",
          "[core][engine]")
{
  GatedStore store;
  store.open();
  {
    Harness first({}, &store); // another daemon answered "a" before
    auto sink = std::make_shared<RecordingSink>();
    first.call("a", "chat", {{"prompt", "p"}}, sink);
    REQUIRE(envelope_of(sink->result("a"))["content"] == "echo: p");
    REQUIRE(first.drained());
  }
  // One call thread, busy: the replayed call's run waits for it, stopped
  // (permits to spare, so it waits for the thread and not for capacity,
  // which a stop would end at once).
  Harness h({{"EXAI_CALL_THREADS", "1"},
             {"EXAI_WS_GLM_MAX_INFLIGHT", "16"},
             {"EXAI_WS_KIMI_MAX_INFLIGHT", "16"},
             {"EXAI_WS_SESSION_MAX_INFLIGHT", "16"}},
            &store);
  auto sink = std::make_shared<RecordingSink>();
  h.call("x", "chat", {{"prompt", "block x"}}, sink);
  REQUIRE(h.chat.wait_active(1));
  // Three of the four lookup threads wait on the store.
  store.hold(":held");
  for (int i = 0; i < 3; ++i) {
    h.call("held" + std::to_string(i), "chat", {{"prompt", "q" + std::to_string(i)}}, sink);
  }
  REQUIRE(store.wait_gets(5)); // "a" and "x" in the first engine, "x" and three held here
  auto replayed = std::make_shared<RecordingSink>();
  h.call("a", "chat", {{"prompt", "p"}}, replayed);
  CHECK(envelope_of(replayed->result("a"))["content"] == "echo: p");
  // The last lookup thread read "c" after it finished with "a": the replay
  // has stopped a's run by now.
  h.call("c", "chat", {{"prompt", "c"}}, sink);
  REQUIRE(store.wait_gets(7));
  auto joiner = std::make_shared<RecordingSink>();
  h.call("b", "chat", {{"prompt", "p"}}, joiner);
  store.release_held();
  h.chat.release();
  // Joined to the stopped run, it was CANCELLED though nobody cancelled it.
  const json b = joiner->result("b");
  CHECK_FALSE(b.contains("error"));
  REQUIRE(b.contains("outputs"));
  CHECK(envelope_of(b)["content"] == "echo: p");
  CHECK(h.engine->stats().counters.replayed == 1);
  CHECK(h.drained());
}

TEST_CASE("a store read that fails unexpectedly still lets the call run and the engine drain",
          "[core][engine]")
{
  GatedStore store;
  store.open();
  store.throw_anything();
  Harness h({}, &store);
  auto sink = std::make_shared<RecordingSink>();
  h.call("r1", "chat", {{"prompt", "p1"}}, sink);
  // Nothing could be read: the call runs as if nothing were stored.
  CHECK(envelope_of(sink->result("r1", 5s))["content"] == "echo: p1");
  // A continued call reads its thread on the same threads: it is answered too.
  h.call("c1", "chat", {{"prompt", "more"}, {"continuation_id", "some-thread"}}, sink);
  CHECK(sink->result("c1", 5s).contains("error"));
  CHECK(h.drained());
}

TEST_CASE("a submission never waits on the shared store on the submitting thread", "[core][engine]")
{
  GatedStore store;
  Harness h({}, &store);
  auto sink = std::make_shared<RecordingSink>();
  const auto asked = std::chrono::steady_clock::now();
  for (int i = 0; i < 8; ++i) {
    h.call("r" + std::to_string(i), "chat", {{"prompt", "p" + std::to_string(i)}}, sink);
  }
  // Planned with a thread that is read from the store.
  h.call("cont", "chat", {{"prompt", "more"}, {"continuation_id", "no-such-thread"}}, sink);
  // The store holds every read; submit() returned anyway.
  CHECK(std::chrono::steady_clock::now() - asked < 2s);
  REQUIRE(store.wait_gets(4)); // all four lookup threads wait on it
  // Nothing ran before the store answered: a stored result would be sent instead.
  CHECK(h.chat.calls() == 0);
  for (const auto& frame : sink->frames()) {
    CHECK(frame["op"] != "call_tool_res");
  }
  store.open();
  for (int i = 0; i < 8; ++i) {
    CHECK(envelope_of(sink->result("r" + std::to_string(i)))["content"] ==
          "echo: p" + std::to_string(i));
  }
  CHECK_THAT(sink->result("cont")["error"]["message"].get<std::string>(),
             Catch::Contains("continuation_id"));
  CHECK(h.drained());

  // Another engine on the same store (another daemon, or this one restarted)
  // replays the stored result instead of calling the model again.
  Harness other({}, &store);
  auto again = std::make_shared<RecordingSink>();
  other.call("r3", "chat", {{"prompt", "p3"}}, again);
  CHECK(envelope_of(again->result("r3"))["content"] == "echo: p3");
  CHECK(other.chat.calls() == 0);
  CHECK(other.engine->stats().counters.replayed == 1);

  // Whatever else is found under a result's key, the call runs afresh.
  for (const std::string junk : {R"({"fingerprint": 5})",
                                 "not json",
                                 R"({"fingerprint": "1", "outputs": 7})",
                                 R"([1, 2])"}) {
    CAPTURE(junk);
    store.overwrite_all(junk);
    Harness fresh({}, &store);
    auto sink3 = std::make_shared<RecordingSink>();
    fresh.call("r3", "chat", {{"prompt", "p3"}}, sink3);
    CHECK(envelope_of(sink3->result("r3"))["content"] == "echo: p3");
    CHECK(fresh.chat.calls() == 1);
    CHECK(fresh.engine->stats().counters.replayed == 0);
  }
}
