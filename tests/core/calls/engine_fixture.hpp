#pragma once

// What the engine tests share: a CallSink that records the engine's events,
// and the check that an engine holds nothing any more.

#include "core/calls/call_sink.hpp"
#include "core/calls/engine.hpp"
#include "core/error.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace exai::test {

// Records the engine's typed events as op-protocol-shaped JSON objects (the
// shape the tests assert on); can wait for a condition with a deadline.
class RecordingSink final : public core::CallSink {
public:
  void on_progress(std::string_view request_id,
                   std::string_view tool,
                   std::string_view note) noexcept override
  {
    nlohmann::json frame{{"op", "progress"}, {"request_id", request_id}, {"name", tool}};
    if (!note.empty()) {
      frame["note"] = note;
    }
    record(std::move(frame));
  }
  void on_ack(std::string_view request_id,
              std::string_view tool,
              std::chrono::milliseconds timeout) noexcept override
  {
    record({{"op", "call_tool_ack"},
            {"request_id", request_id},
            {"accepted", true},
            {"timeout", static_cast<double>(timeout.count()) / 1000.0},
            {"name", tool}});
  }
  bool on_result(std::string_view request_id, const core::ToolResult& result) noexcept override
  {
    nlohmann::json frame{{"op", "call_tool_res"}, {"request_id", request_id}};
    if (const auto* success = std::get_if<core::ToolSuccess>(&result)) {
      frame["outputs"] = nlohmann::json::array();
      std::string text;
      for (const auto& output : success->outputs) {
        frame["outputs"].push_back({{"type", "text"}, {"text", output}});
        text += (text.empty() ? "" : "\n\n") + output;
      }
      frame["text"] = text;
    } else {
      const auto& failure = std::get<core::ToolFailure>(result);
      frame["error"] = {{"code", core::protocol_code(failure.code)},
                        {"message", failure.message},
                        {"details", failure.details}};
    }
    if (before_result) {
      before_result(request_id);
    }
    {
      const std::lock_guard lock(mutex_);
      result_threads_.push_back(std::this_thread::get_id());
    }
    record(std::move(frame));
    return accept_results;
  }
  // Runs inside on_result, before the frame is recorded (set before calls start).
  std::function<void(std::string_view request_id)> before_result;
  void record(nlohmann::json frame)
  {
    const std::lock_guard lock(mutex_);
    frames_.push_back(std::move(frame));
    changed_.notify_all();
  }
  std::atomic<bool> accept_results{true};
  std::vector<nlohmann::json> frames() const
  {
    const std::lock_guard lock(mutex_);
    return frames_;
  }
  // Waits until a call_tool_res for `request_id` arrived; returns it.
  nlohmann::json result(const std::string& request_id,
                        std::chrono::milliseconds limit = std::chrono::seconds(10))
  {
    std::unique_lock lock(mutex_);
    nlohmann::json found;
    changed_.wait_for(lock, limit, [&] {
      for (const auto& f : frames_) {
        if (f["op"] == "call_tool_res" && f["request_id"] == request_id) {
          found = f;
          return true;
        }
      }
      return false;
    });
    return found;
  }
  // Waits until `n` frames with `op` for `request_id` arrived.
  bool wait_count(const std::string& op, const std::string& request_id, std::size_t n)
  {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (count(op, request_id) < n) {
      if (std::chrono::steady_clock::now() > deadline) {
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
  }
  std::size_t count(const std::string& op, const std::string& request_id) const
  {
    const std::lock_guard lock(mutex_);
    return static_cast<std::size_t>(
        std::count_if(frames_.begin(), frames_.end(), [&](const nlohmann::json& f) {
          return f["op"] == op && f.value("request_id", "") == request_id;
        }));
  }

  // The threads results were delivered on, in order.
  std::vector<std::thread::id> result_threads() const
  {
    const std::lock_guard lock(mutex_);
    return result_threads_;
  }

private:
  mutable std::mutex mutex_;
  std::vector<std::thread::id> result_threads_;
  std::condition_variable changed_;
  std::vector<nlohmann::json> frames_;
};

// Waits until nothing is in flight and every scope is back to zero.
inline bool
engine_drained(const core::Engine& engine,
               std::chrono::milliseconds limit = std::chrono::seconds(10))
{
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    const auto s = engine.stats();
    bool zero = s.inflight_calls == 0 && s.executions == 0 && s.capacity.global.in_use == 0 &&
                s.capacity.global.waiting == 0 && s.capacity.sessions.in_use == 0 &&
                s.capacity.conversations.in_use == 0 && s.capacity.session_limiters == 0 &&
                s.capacity.conversation_limiters == 0 && s.queued == 0;
    for (const auto& [id, p] : s.capacity.providers) {
      zero = zero && p.in_use == 0 && p.waiting == 0;
    }
    if (zero) {
      return true;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

} // namespace exai::test
