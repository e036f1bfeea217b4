#include "core/calls/toolcall_log.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/text_file.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <optional>
#include <sstream>
#include <thread>

using namespace exai::core;
using namespace exai::test;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

ToolCallRecord
record(const std::string& tool, exai::core::ToolResult result)
{
  ToolCallRecord r;
  r.time = std::chrono::system_clock::now();
  r.session_id = "session-0123456789abcdef";
  r.request_id = "r1";
  r.tool = tool;
  r.model = "glm-4.5-flash";
  r.provider = "glm";
  r.duration = std::chrono::milliseconds(12);
  r.arguments = std::make_shared<const json>(json{{"prompt", "the prompt sk-secret-key-123"}});
  r.result = std::make_shared<const exai::core::ToolResult>(std::move(result));
  return r;
}

const std::string kEnvelope =
    R"({"status":"success","content":"answer sk-secret-key-123","content_type":"text",)"
    R"("metadata":{"model_used":"glm-4.6","provider_used":"glm","usage":{"total_tokens":9}}})";

} // namespace

TEST_CASE("a log line has the call's facts and no content by default", "[core][toolcall_log]")
{
  ToolCallLog log(ToolCallLog::Options{"", 4096, 1, false, {"sk-secret-key-123"}, 16});
  const json line = json::parse(log.line(record("chat", ToolSuccess{{kEnvelope}})));
  CHECK(line["tool"] == "chat");
  CHECK(line["outcome"] == "ok");
  CHECK(line["model"] == "glm-4.6");
  CHECK(line["usage"]["total_tokens"] == 9);
  CHECK(line["duration_ms"] == 12);
  CHECK(line["session"] != "session-0123456789abcdef");
  CHECK_FALSE(line.contains("arguments"));
  CHECK_FALSE(line.contains("output"));
  CHECK(line["argument_bytes"].get<int>() > 0);
}

TEST_CASE("a log line takes model, provider and usage from the metadata only when well-typed",
          "[core][toolcall_log]")
{
  ToolCallLog log(ToolCallLog::Options{"", 4096, 1, false, {}, 16});
  // Members of the same names deeper in the answer are not the metadata's.
  const std::string nested =
      R"({"status":"success","content":"{\"model_used\":\"fake\"}","content_type":"text",)"
      R"("details":{"metadata":{"model_used":"deeper"}},)"
      R"("metadata":{"steps":[{"model_used":"step"}],"provider_used":"kimi",)"
      R"("usage":{"prompt_tokens":3,"completion_tokens":4}}})";
  const json line = json::parse(log.line(record("chat", ToolSuccess{{nested}})));
  CHECK(line["model"] == "glm-4.5-flash"); // the plan's: the metadata has no top-level model_used
  CHECK(line["provider"] == "kimi");
  CHECK(line["usage"] == json{{"prompt_tokens", 3}, {"completion_tokens", 4}});
  const std::string wrong_types =
      R"({"status":"success","content":"x","metadata":{"model_used":7,"provider_used":null,)"
      R"("usage":"many"}})";
  const json plain = json::parse(log.line(record("chat", ToolSuccess{{wrong_types}})));
  CHECK(plain["model"] == "glm-4.5-flash");
  CHECK(plain["provider"] == "glm");
  CHECK_FALSE(plain.contains("usage"));
}

TEST_CASE("the tool-call writer runs below normal priority", "[core][toolcall_log]")
{
  // Its bursts of formatting took a core from the event loops on a 2-core
  // machine: version x1 p99 0.29-0.38 ms with it at normal priority, 0.13-0.14
  // ms at nice 10.
  const auto writer_nice = []() -> std::optional<int> {
    for (const auto& task : fs::directory_iterator("/proc/self/task")) {
      if (read_text(task.path() / "comm") != "exai-toolcalls\n") {
        continue;
      }
      // Field 19 of stat is the nice value; the name (field 2) is known.
      std::istringstream stat(read_text(task.path() / "stat"));
      std::string field;
      for (int i = 1; i <= 19 && stat >> field; ++i) {
      }
      return std::stoi(field);
    }
    return std::nullopt;
  };
  CHECK_FALSE(writer_nice().has_value());
  {
    ToolCallLog log(ToolCallLog::Options{"", 4096, 1, false, {}, 16});
    log.record(record("chat", ToolSuccess{{kEnvelope}}));
    log.flush(); // the writer has run
    CHECK(writer_nice() == 10);
  }
  CHECK_FALSE(writer_nice().has_value());
}

TEST_CASE("content mode logs arguments and output with keys scrubbed", "[core][toolcall_log]")
{
  ToolCallLog log(ToolCallLog::Options{"", 4096, 1, true, {"sk-secret-key-123"}, 16});
  const std::string text = log.line(record("chat", ToolSuccess{{kEnvelope}}));
  CHECK(text.find("the prompt") != std::string::npos);
  CHECK(text.find("sk-secret-key-123") == std::string::npos);
  const std::string failed = log.line(record("chat",
                                             ToolFailure{exai::core::Errc::validation_error,
                                                         "bad sk-secret-key-123",
                                                         {{"field", "prompt"}}}));
  CHECK(json::parse(failed)["outcome"] == "VALIDATION_ERROR");
  CHECK(json::parse(failed)["error_field"] == "prompt");
  CHECK(failed.find("sk-secret-key-123") == std::string::npos);
}

TEST_CASE("the log rotates past max_bytes and keeps `keep` files", "[core][toolcall_log]")
{
  exai::test::TempDir dir;
  const std::string path = dir.path() + "/toolcalls.jsonl";
  {
    ToolCallLog log(ToolCallLog::Options{path, 1024, 2, false, {}, 4096});
    for (int i = 0; i < 40; ++i) {
      log.record(record("status", ToolSuccess{{kEnvelope}}));
    }
    log.flush();
    const auto tail = log.last(5);
    CHECK(tail.size() == 5);
  }
  CHECK(fs::exists(path));
  CHECK(fs::exists(path + ".1"));
  CHECK(fs::exists(path + ".2"));
  CHECK_FALSE(fs::exists(path + ".3"));
  for (const auto& file : {path, path + ".1", path + ".2"}) {
    CHECK(fs::file_size(file) <= 1024);
    CHECK(read_text(file).find("the prompt") == std::string::npos);
  }
  CHECK((fs::status(path).permissions() & fs::perms::group_read) == fs::perms::none);
}

TEST_CASE("the live log never goes missing while it rotates", "[core][toolcall_log]")
{
  exai::test::TempDir dir;
  const std::string path = dir.path() + "/toolcalls.jsonl";
  ToolCallLog log(ToolCallLog::Options{path, 512, 2, false, {}, 4096});
  log.record(record("status", ToolSuccess{{kEnvelope}}));
  log.flush();
  std::atomic<bool> done{false};
  std::atomic<int> missing{0};
  std::thread watcher([&] {
    while (!done.load()) {
      missing += fs::exists(path) ? 0 : 1;
    }
  });
  for (int i = 0; i < 300; ++i) { // each flush is its own batch, most of them rotate
    log.record(record("status", ToolSuccess{{kEnvelope}}));
    log.flush();
  }
  done = true;
  watcher.join();
  CHECK(missing.load() == 0);
  CHECK(fs::exists(path + ".2"));
  CHECK_FALSE(fs::exists(path + ".new"));
}

TEST_CASE("a tail read while the log rotates never gives a line twice", "[core][toolcall_log]")
{
  exai::test::TempDir dir;
  const std::string path = dir.path() + "/toolcalls.jsonl";
  ToolCallLog log(ToolCallLog::Options{path, 1024, 2, false, {}, 4096});
  std::atomic<bool> done{false};
  std::atomic<int> repeated{0};
  std::atomic<int> reads{0};
  std::thread reader([&] {
    while (!done.load()) {
      std::vector<std::string> ids;
      for (const auto& event : log.last(20)) {
        ids.push_back(event.value("request_id", ""));
      }
      std::sort(ids.begin(), ids.end());
      repeated += std::adjacent_find(ids.begin(), ids.end()) != ids.end() ? 1 : 0;
      ++reads;
    }
  });
  for (int i = 0; i < 400; ++i) { // each flush is its own batch, many of them rotate
    ToolCallRecord r = record("status", ToolSuccess{{kEnvelope}});
    r.request_id = "r" + std::to_string(i);
    log.record(std::move(r));
    log.flush();
  }
  done = true;
  reader.join();
  CHECK(reads.load() > 0);
  CHECK(repeated.load() == 0);
}

TEST_CASE("a full queue drops records and counts them", "[core][toolcall_log]")
{
  exai::test::TempDir dir;
  ToolCallLog log(ToolCallLog::Options{dir.path() + "/t.jsonl", 1 << 20, 1, false, {}, 1});
  for (int i = 0; i < 200; ++i) {
    log.record(record("status", ToolSuccess{{kEnvelope}}));
  }
  log.flush();
  CHECK(log.dropped() + log.last(1000).size() == 200);
}

TEST_CASE("the writer keeps the last calls' summaries, newest first, without content",
          "[core][toolcall_log]")
{
  ToolCallLog::Options options{"", 4096, 1, true, {"sk-secret-key-123"}, 16};
  options.recent = 2;
  ToolCallLog log(options);
  for (const char* tool : {"chat", "thinkdeep", "analyze"}) {
    log.record(record(tool, ToolSuccess{{kEnvelope}}));
  }
  log.record(record("debug", ToolFailure{exai::core::Errc::timeout, "too slow", json::object()}));
  log.flush();
  const auto recent = log.recent();
  REQUIRE(recent.size() == 2);
  CHECK(recent[0]["tool"] == "debug");
  CHECK(recent[0]["outcome"] == "TIMEOUT");
  CHECK(recent[1]["tool"] == "analyze");
  CHECK(recent[1]["usage"]["total_tokens"] == 9);
  // The log file may hold content (content=true); the summaries never do.
  CHECK_FALSE(recent[1].contains("arguments"));
  CHECK_FALSE(recent[1].contains("output"));
  CHECK_FALSE(recent[1].contains("prompt"));
  const auto minutes = log.per_minute();
  REQUIRE_FALSE(minutes.empty());
  std::uint64_t calls = 0;
  std::uint64_t errors = 0;
  for (const auto& minute : minutes) {
    calls += minute.calls;
    errors += minute.errors;
  }
  CHECK(calls == 4);
  CHECK(errors == 1);
}

TEST_CASE("with recent_content the summaries carry scrubbed prompt and answer excerpts",
          "[core][toolcall_log]")
{
  ToolCallLog::Options options{"", 4096, 1, false, {"sk-secret-key-123"}, 16};
  options.recent_content = true;
  ToolCallLog log(options);
  log.record(record("chat", ToolSuccess{{kEnvelope}}));
  log.flush();
  const auto recent = log.recent();
  REQUIRE(recent.size() == 1);
  CHECK(recent[0]["prompt"].get<std::string>().starts_with("the prompt "));
  CHECK(recent[0]["output"].get<std::string>().starts_with("answer "));
  CHECK(recent[0].dump().find("sk-secret-key-123") == std::string::npos);
}
