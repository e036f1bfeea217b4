#pragma once

// A CallEngine for MCP transport tests: answers `version` at once, runs
// `slow` until release() or cancel(), answers `busy` with OVER_CAPACITY and
// anything else with TOOL_NOT_FOUND; while draining, every call gets
// SHUTTING_DOWN. Records submits and cancels.

#include "core/calls/call_engine.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace exai::test {

class ScriptedCallEngine final : public core::CallEngine {
public:
  ScriptedCallEngine() = default;

  // A graceful stop: from now on every call is refused with SHUTTING_DOWN.
  void drain() { draining_ = true; }
  ScriptedCallEngine(const ScriptedCallEngine&) = delete;
  ScriptedCallEngine& operator=(const ScriptedCallEngine&) = delete;
  ~ScriptedCallEngine() override
  {
    {
      const std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    changed_.notify_all();
    for (auto& t : threads_) {
      t.join();
    }
  }

  void submit(core::CallRequest request, const std::shared_ptr<core::CallSink>& sink) override
  {
    const std::string rid = request.request_id;
    const std::string tool = request.tool;
    {
      const std::lock_guard lock(mutex_);
      submitted_.push_back(rid);
      sessions_[rid] = request.session_id;
    }
    changed_.notify_all();
    if (draining_) {
      sink->on_result(rid,
                      core::ToolFailure{core::Errc::shutting_down, "the daemon is stopping", {}});
      return;
    }
    sink->on_progress(rid, tool, "accepted, awaiting provider/session capacity");
    if (tool == "version") {
      sink->on_ack(rid, tool, std::chrono::seconds(270));
      sink->on_result(rid, core::ToolSuccess{{R"({"status":"success","content":"exai 0.1.0"})"}});
    } else if (tool == "busy") {
      sink->on_result(rid,
                      core::ToolFailure{core::Errc::over_capacity,
                                        "global capacity exhausted",
                                        {{"scope", "global"}, {"retry_after", 1}}});
    } else if (tool == "slow") {
      sink->on_ack(rid, tool, std::chrono::seconds(270));
      {
        const std::lock_guard lock(mutex_);
        running_.insert(rid);
        const std::size_t pad =
            request.arguments.is_object() ? request.arguments.value("pad", std::size_t{0}) : 0;
        threads_.emplace_back([this, rid, sink, pad] { finish_slow(rid, sink, pad); });
      }
      changed_.notify_all();
    } else {
      sink->on_result(rid, core::ToolFailure{core::Errc::tool_not_found, tool, {}});
    }
  }

  // Runs a `slow` call until release(), cancel() or destruction; its result
  // is "slow done" and `pad` more characters.
  void
  finish_slow(const std::string& rid, const std::shared_ptr<core::CallSink>& sink, std::size_t pad)
  {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return stopping_ || released_ || cancelled_.count(rid) != 0; });
    running_.erase(rid);
    const bool cancelled = cancelled_.count(rid) != 0;
    lock.unlock();
    changed_.notify_all();
    if (cancelled) {
      sink->on_result(rid, core::ToolFailure{core::Errc::cancelled, "cancelled", {}});
    } else {
      sink->on_result(rid, core::ToolSuccess{{"slow done" + std::string(pad, '.')}});
    }
    {
      const std::lock_guard done_lock(mutex_);
      ++answered_;
    }
    changed_.notify_all();
  }

  bool cancel(std::string_view /*session_id*/, std::string_view request_id) override
  {
    {
      const std::lock_guard lock(mutex_);
      if (running_.count(std::string(request_id)) == 0) {
        return false;
      }
      cancelled_.insert(std::string(request_id));
    }
    changed_.notify_all();
    return true;
  }

  void attach_session(const std::string& /*session_id*/,
                      const std::shared_ptr<core::CallSink>& /*sink*/) override
  {
  }

  void undelivered(const std::string& /*session_id*/,
                   const std::vector<std::string>& /*request_ids*/) override
  {
  }

  nlohmann::json list_tools() const override
  {
    return nlohmann::json::array(
        {{{"name", "slow"}, {"description", "waits"}, {"inputSchema", {{"type", "object"}}}},
         {{"name", "version"}, {"description", "the version"}}});
  }

  // Lets every running `slow` call finish successfully.
  void release()
  {
    {
      const std::lock_guard lock(mutex_);
      released_ = true;
    }
    changed_.notify_all();
  }

  // Waits until `n` calls are running (true) or `timeout` passes.
  bool wait_running(std::size_t n, std::chrono::milliseconds timeout)
  {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return running_.size() >= n; });
  }

  // Waits until `n` calls were submitted (true) or `timeout` passes.
  bool wait_submitted(std::size_t n, std::chrono::milliseconds timeout)
  {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return submitted_.size() >= n; });
  }

  // Waits until nothing runs.
  // Waits until `n` slow calls were answered and their sinks returned (true)
  // or `timeout` passes.
  bool wait_answered(std::size_t n, std::chrono::milliseconds timeout)
  {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return answered_ >= n; });
  }

  bool wait_idle(std::chrono::milliseconds timeout)
  {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return running_.empty(); });
  }

  std::size_t cancel_count() const
  {
    const std::lock_guard lock(mutex_);
    return cancelled_.size();
  }

  std::vector<std::string> submitted() const
  {
    const std::lock_guard lock(mutex_);
    return submitted_;
  }

private:
  std::atomic<bool> draining_{false};
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::string> submitted_;
  std::map<std::string, std::string> sessions_;
  std::set<std::string> running_;
  std::size_t answered_ = 0; // slow calls whose on_result returned
  std::set<std::string> cancelled_;
  bool released_ = false;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

} // namespace exai::test
