// The engine's continuation path: a model call admitted on a thread whose
// backend can start calls there (an event loop in exai serve) runs without
// a call thread, finishes on that thread when the answer comes, and keeps
// every promise of the blocking path — one result, capacity given back,
// cancel, deadline, shutdown, fallback.

#include "core/calls/engine.hpp"
#include "tests/core/calls/engine_fixture.hpp"

#include <catch2/catch.hpp>

#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <list>
#include <mutex>
#include <optional>
#include <stop_token>
#include <thread>
#include <vector>

using namespace exai::core;
using namespace std::chrono_literals;
using exai::test::RecordingSink;
using nlohmann::json;

namespace {

// A ChatBackend with a loop of its own, as UpstreamClient has on an event
// loop: start() takes calls only on the loop's thread and answers them
// there, later. Prompts starting with "block" wait until released or
// stopped; "glmdown" on GLM is a provider outage. complete() serves call
// threads the same way, blocking.
class LoopChat final : public ChatBackend {
public:
  LoopChat()
      : thread_([this](const std::stop_token& stop) { run(stop); })
  {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return loop_id_ != std::thread::id(); });
  }
  ~LoopChat() override
  {
    thread_.request_stop();
    changed_.notify_all();
  }
  LoopChat(const LoopChat&) = delete;
  LoopChat& operator=(const LoopChat&) = delete;

  // Runs `task` on the loop's thread.
  void post(std::function<void()> task)
  {
    const std::lock_guard lock(mutex_);
    tasks_.push_back(std::move(task));
    changed_.notify_all();
  }
  std::thread::id loop_thread() const
  {
    const std::lock_guard lock(mutex_);
    return loop_id_;
  }

  bool starts_here() const override { return std::this_thread::get_id() == loop_thread(); }

  bool start(std::string_view provider,
             ChatRequest request,
             std::stop_token stop,
             ChatDone done) override
  {
    if (!starts_here()) {
      return false;
    }
    started_.fetch_add(1);
    const std::string prompt = request.messages.back().content;
    if (prompt.rfind("block", 0) != 0) {
      post([done = std::move(done), outcome = answer(provider, request)] { done(outcome); });
      return true;
    }
    // Ends once: released (answered) or stopped (cancelled), on the loop.
    auto pending = std::make_shared<Pending>();
    pending->done = std::move(done);
    pending->reply = answer(provider, request);
    {
      const std::lock_guard lock(mutex_);
      blocked_.push_back(pending);
      ++active_;
    }
    changed_.notify_all();
    // Weak: the pending call owns its callback, which must not own it back.
    pending->on_stop.emplace(std::move(stop),
                             std::function<void()>([this, weak = std::weak_ptr(pending)] {
                               if (auto call = weak.lock()) {
                                 end(call, ChatFailure{Errc::cancelled, "stopped", {}});
                               }
                             }));
    return true;
  }

  ChatOutcome
  complete(std::string_view provider, const ChatRequest& request, std::stop_token /*stop*/) override
  {
    completed_.fetch_add(1);
    return answer(provider, request);
  }
  std::string circuit_state(std::string_view) const override { return "closed"; }

  // Answers every blocked call.
  void release()
  {
    std::vector<std::shared_ptr<Pending>> all;
    {
      const std::lock_guard lock(mutex_);
      all.assign(blocked_.begin(), blocked_.end());
    }
    for (const auto& pending : all) {
      end(pending, pending->reply);
    }
  }
  bool wait_active(int n, std::chrono::milliseconds limit = 10s)
  {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, limit, [&] { return active_ == n; });
  }
  int started() const { return started_.load(); }
  int completed() const { return completed_.load(); }

private:
  struct Pending {
    ChatDone done;
    ChatOutcome reply;
    std::atomic<bool> ended{false};
    std::optional<std::stop_callback<std::function<void()>>> on_stop;
  };

  static ChatOutcome answer(std::string_view provider, const ChatRequest& request)
  {
    const std::string prompt = request.messages.back().content;
    if (prompt.rfind("glmdown", 0) == 0 && provider == "glm") {
      return ChatFailure{Errc::provider_unavailable, "GLM is unavailable: circuit open", {}};
    }
    ChatReply reply;
    reply.content = "echo: " + prompt;
    reply.model = request.model;
    reply.finish_reason = "stop";
    reply.usage = {{"prompt_tokens", 3}, {"completion_tokens", 2}};
    return reply;
  }

  void end(const std::shared_ptr<Pending>& pending, ChatOutcome outcome)
  {
    if (pending->ended.exchange(true)) {
      return;
    }
    post([this, pending, outcome = std::move(outcome)] {
      {
        const std::lock_guard lock(mutex_);
        blocked_.remove(pending);
        --active_;
      }
      changed_.notify_all();
      auto done = std::move(pending->done);
      done(outcome);
    });
  }

  void run(const std::stop_token& stop)
  {
    {
      const std::lock_guard lock(mutex_);
      loop_id_ = std::this_thread::get_id();
    }
    changed_.notify_all();
    std::unique_lock lock(mutex_);
    while (!stop.stop_requested()) {
      changed_.wait(lock, stop, [&] { return !tasks_.empty(); });
      while (!tasks_.empty()) {
        auto task = std::move(tasks_.front());
        tasks_.pop_front();
        lock.unlock();
        task();
        lock.lock();
      }
    }
  }

  mutable std::mutex mutex_;
  std::condition_variable_any changed_;
  std::deque<std::function<void()>> tasks_;     // guarded by mutex_
  std::list<std::shared_ptr<Pending>> blocked_; // guarded by mutex_
  int active_ = 0;                              // guarded by mutex_
  std::thread::id loop_id_;                     // guarded by mutex_
  std::atomic<int> started_{0};
  std::atomic<int> completed_{0};
  std::jthread thread_; // last
};

struct LoopHarness {
  explicit LoopHarness(Settings::Map env = {})
      : config([&] {
        env.emplace("EXAI_WS_PROGRESS_INTERVAL_SECS", "0.05");
        env.emplace("EXAI_WS_ACQUIRE_TIMEOUT_SECS", "0.2");
        return load_daemon_config(Settings({}, std::move(env), {}));
      }())
      , providers(ProviderRegistry::build(
            Settings({}, {{"KIMI_API_KEY", "kimi-test-key"}, {"GLM_API_KEY", "glm-test-key"}}, {})))
      , engine(std::make_unique<Engine>(EngineDeps{config, providers, process_tools(), chat}))
  {
  }
  ~LoopHarness() { engine->shutdown(0ms); }
  LoopHarness(const LoopHarness&) = delete;
  LoopHarness& operator=(const LoopHarness&) = delete;

  // Submits on the loop's thread, as an event loop of exai serve does.
  void call_on_loop(const std::string& id,
                    const std::string& tool,
                    json args,
                    const std::shared_ptr<CallSink>& sink,
                    const std::string& session = "s1")
  {
    std::promise<void> submitted;
    chat.post([&] {
      engine->submit({id, tool, std::move(args), session, "owner"}, sink);
      submitted.set_value();
    });
    submitted.get_future().wait();
  }
  bool drained() const { return exai::test::engine_drained(*engine); }

  DaemonConfig config;
  LoopChat chat;
  ProviderRegistry providers;
  std::unique_ptr<Engine> engine;
};

json
loop_envelope(const json& res)
{
  REQUIRE(res.contains("outputs"));
  return json::parse(res["outputs"][0]["text"].get<std::string>());
}

} // namespace

TEST_CASE("a chat call admitted on a loop runs there, with no call thread, and ends once",
          "[core][engine][engine_loop]")
{
  LoopHarness h;
  auto sink = std::make_shared<RecordingSink>();
  h.call_on_loop("r1", "chat", {{"prompt", "hello"}, {"model", "glm-4.5-flash"}}, sink);
  const json env = loop_envelope(sink->result("r1"));
  CHECK(env["content"] == "echo: hello");
  CHECK(env["metadata"]["provider_used"] == "glm");
  REQUIRE(env["continuation_offer"].is_object());
  CHECK(h.chat.started() == 1);
  CHECK(h.chat.completed() == 0);
  CHECK(sink->result_threads() == std::vector<std::thread::id>{h.chat.loop_thread()});
  const auto stats = h.engine->stats();
  CHECK(stats.loop_calls == 1);
  CHECK(stats.call_threads == 0);
  CHECK(stats.counters.ok == 1);
  // The meters saw the answer.
  REQUIRE(stats.usage.count({"glm", "glm-4.5-flash"}) == 1);
  CHECK(stats.usage.at({"glm", "glm-4.5-flash"}).tokens.prompt == 3);
  CHECK(h.drained());
  CHECK(sink->count("call_tool_res", "r1") == 1);

  // The conversation it started continues on the loop too.
  const auto id = env["continuation_offer"]["continuation_id"].get<std::string>();
  h.call_on_loop("r2", "chat", {{"prompt", "again"}, {"continuation_id", id}}, sink);
  const json next = loop_envelope(sink->result("r2"));
  CHECK(next["metadata"]["conversation_turns"] == 2);
  CHECK(h.engine->stats().loop_calls == 2);
}

TEST_CASE("calls off a loop, and calls with files to read, run on call threads",
          "[core][engine][engine_loop]")
{
  const auto dir = std::filesystem::temp_directory_path() /
                   ("exai-loop-" + std::to_string(::getpid()) + "-" +
                    std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "a.txt") << "file text";
  LoopHarness h(Settings::Map{{"EXAI_FILE_ROOTS", dir.string()}});
  auto sink = std::make_shared<RecordingSink>();
  h.engine->submit({"off", "chat", {{"prompt", "from a test thread"}}, "s1", "owner"}, sink);
  CHECK(loop_envelope(sink->result("off"))["content"] == "echo: from a test thread");
  h.call_on_loop(
      "files", "chat", {{"prompt", "read"}, {"files", {(dir / "a.txt").string()}}}, sink);
  const json env = loop_envelope(sink->result("files"));
  CHECK_THAT(env["content"].get<std::string>(), Catch::Contains("file text"));
  CHECK(h.chat.started() == 0);
  CHECK(h.chat.completed() == 2);
  CHECK(h.engine->stats().loop_calls == 0);
  CHECK(h.drained());
  std::filesystem::remove_all(dir);
}

TEST_CASE("cancel_tool ends a call on a loop at once and frees its capacity",
          "[core][engine][engine_loop]")
{
  LoopHarness h;
  auto sink = std::make_shared<RecordingSink>();
  h.call_on_loop("r1", "chat", {{"prompt", "block"}, {"model", "glm-4.5-flash"}}, sink);
  REQUIRE(h.chat.wait_active(1));
  CHECK(h.engine->stats().capacity.providers.at("glm").in_use == 1);
  CHECK(h.engine->cancel("s1", "r1"));
  CHECK(sink->result("r1")["error"]["code"] == "CANCELLED");
  CHECK(h.chat.wait_active(0)); // the backend heard the stop
  CHECK(h.drained());
  h.chat.release();
  CHECK(sink->count("call_tool_res", "r1") == 1);
  CHECK(h.engine->stats().counters.cancelled == 1);
}

TEST_CASE("a call on a loop that passes its deadline gets TIMEOUT; the backend is stopped",
          "[core][engine][engine_loop]")
{
  LoopHarness h(Settings::Map{{"EXAI_WS_CALL_TIMEOUT_SECS", "0.3"}});
  auto sink = std::make_shared<RecordingSink>();
  const auto start = std::chrono::steady_clock::now();
  h.call_on_loop("r1", "chat", {{"prompt", "block forever"}}, sink);
  const json res = sink->result("r1");
  CHECK(res["error"]["code"] == "TIMEOUT");
  CHECK(std::chrono::steady_clock::now() - start >= 300ms);
  CHECK(h.chat.wait_active(0));
  CHECK(h.drained());
  CHECK(sink->count("call_tool_res", "r1") == 1);
  CHECK(h.engine->stats().counters.timed_out == 1);
}

TEST_CASE("a call waiting for capacity is admitted on the loop where another ended",
          "[core][engine][engine_loop]")
{
  LoopHarness h(
      Settings::Map{{"EXAI_WS_GLM_MAX_INFLIGHT", "1"}, {"EXAI_WS_ACQUIRE_TIMEOUT_SECS", "10"}});
  auto sink = std::make_shared<RecordingSink>();
  h.call_on_loop("first", "chat", {{"prompt", "block a"}, {"model", "glm-4.5-flash"}}, sink);
  REQUIRE(h.chat.wait_active(1));
  h.call_on_loop("second", "chat", {{"prompt", "waits"}, {"model", "glm-4.5-flash"}}, sink);
  REQUIRE(sink->wait_count("progress", "second", 2)); // accepted, then waiting for capacity
  h.chat.release();
  CHECK(loop_envelope(sink->result("first"))["content"] == "echo: block a");
  CHECK(loop_envelope(sink->result("second"))["content"] == "echo: waits");
  CHECK(h.engine->stats().loop_calls == 2);
  CHECK(h.chat.completed() == 0);
  CHECK(h.drained());
}

TEST_CASE("an auto call on a loop whose provider is down falls back on a call thread",
          "[core][engine][engine_loop][fallback]")
{
  LoopHarness h;
  auto sink = std::make_shared<RecordingSink>();
  h.call_on_loop("r1", "chat", {{"prompt", "glmdown now"}}, sink);
  const json env = loop_envelope(sink->result("r1"));
  CHECK(env["metadata"]["provider_used"] == "kimi");
  CHECK(env["metadata"]["fallback_from"] == "glm-4.5-flash");
  CHECK(h.chat.started() == 1);   // the first request, on the loop
  CHECK(h.chat.completed() == 1); // the fallback's, on a call thread
  CHECK(h.drained());
}

TEST_CASE("shutdown ends a call running on a loop with SHUTTING_DOWN",
          "[core][engine][engine_loop]")
{
  LoopHarness h;
  auto sink = std::make_shared<RecordingSink>();
  h.call_on_loop("r1", "chat", {{"prompt", "block"}}, sink);
  REQUIRE(h.chat.wait_active(1));
  h.engine->shutdown(50ms);
  CHECK(sink->result("r1")["error"]["code"] == "SHUTTING_DOWN");
  CHECK(h.chat.wait_active(0));
  CHECK(sink->count("call_tool_res", "r1") == 1);
}

TEST_CASE("calls that fail before their request conclude off the loop, however many queued",
          "[core][engine][engine_loop]")
{
  // Each admitted by the one before giving its capacity back: concluded on
  // the loop, every failure would admit the next one deeper in its stack.
  LoopHarness h(
      Settings::Map{{"EXAI_WS_GLM_MAX_INFLIGHT", "1"}, {"EXAI_WS_ACQUIRE_TIMEOUT_SECS", "30"}});
  auto sink = std::make_shared<RecordingSink>();
  h.call_on_loop("holder", "chat", {{"prompt", "block"}, {"model", "glm-4.5-flash"}}, sink);
  REQUIRE(h.chat.wait_active(1));
  constexpr int kQueued = 40;
  for (int i = 0; i < kQueued; ++i) {
    h.call_on_loop("bad" + std::to_string(i),
                   "chat",
                   {{"prompt", "x"}, {"model", "glm-4.5-flash"}, {"continuation_id", "gone"}},
                   sink,
                   "s" + std::to_string(i));
  }
  h.chat.release();
  for (int i = 0; i < kQueued; ++i) {
    CHECK(sink->result("bad" + std::to_string(i))["error"]["code"] == "VALIDATION_ERROR");
  }
  CHECK(loop_envelope(sink->result("holder"))["content"] == "echo: block");
  const auto threads = sink->result_threads();
  REQUIRE(threads.size() == kQueued + 1);
  CHECK(std::count(threads.begin(), threads.end(), h.chat.loop_thread()) == 1); // the holder's
  CHECK(h.drained());
}
