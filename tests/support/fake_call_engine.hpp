#pragma once

// A controllable core::CallEngine for net tests (test scaffolding, not the
// product engine): records what the server hands it and, when auto_reply is
// on, answers each call at once with one successful call_tool_res.

#include "core/calls/call_engine.hpp"

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace exai::test {

class FakeCallEngine final : public core::CallEngine {
public:
  struct Submitted {
    core::CallRequest request;
    std::weak_ptr<core::CallSink> sink;
  };

  void submit(core::CallRequest request, const std::shared_ptr<core::CallSink>& sink) override;
  bool cancel(std::string_view session_id, std::string_view request_id) override;
  void attach_session(const std::string& session_id,
                      const std::shared_ptr<core::CallSink>& sink) override;
  void undelivered(const std::string& session_id,
                   const std::vector<std::string>& request_ids) override;
  nlohmann::json list_tools() const override;

  // Answer calls immediately with {"outputs":[{"type":"text","text":"ok:<tool>"}]}.
  void set_auto_reply(bool on);
  // Answer each call inline with one result per text instead (auto_reply on).
  void set_reply_texts(std::vector<std::string> texts);
  struct Undelivered {
    std::string session_id;
    std::vector<std::string> request_ids;
    bool inside_submit = false; // called back while submit() was still answering
  };
  std::vector<Undelivered> undelivered_calls() const;
  bool wait_for_undelivered(std::size_t n, std::chrono::milliseconds timeout);
  // What cancel() returns.
  void set_cancel_result(bool found);

  // Waits until at least `n` calls were submitted.
  bool wait_for_calls(std::size_t n, std::chrono::milliseconds timeout);
  // Waits until at least `n` attach_session calls happened.
  bool wait_for_attaches(std::size_t n, std::chrono::milliseconds timeout);

  std::vector<Submitted> calls() const;
  std::vector<std::pair<std::string, std::string>> cancels() const; // (session, request)
  std::vector<std::string> attached_sessions() const;

private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  bool auto_reply_ = true;
  bool cancel_result_ = false;
  std::vector<Submitted> calls_;
  std::vector<std::pair<std::string, std::string>> cancels_;
  std::vector<std::string> attached_;
  std::vector<std::string> reply_texts_;
  std::vector<Undelivered> undelivered_;
  std::atomic<int> submitting_{0};
};

} // namespace exai::test
