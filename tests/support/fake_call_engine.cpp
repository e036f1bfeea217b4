#include "tests/support/fake_call_engine.hpp"

namespace exai::test {

void
FakeCallEngine::submit(core::CallRequest request, const std::shared_ptr<core::CallSink>& sink)
{
  bool reply = false;
  const std::string request_id = request.request_id;
  const std::string tool = request.tool;
  std::vector<std::string> texts;
  {
    const std::lock_guard lock(mutex_);
    calls_.push_back(Submitted{std::move(request), sink});
    reply = auto_reply_;
    texts = reply_texts_.empty() ? std::vector<std::string>{"ok:" + tool} : reply_texts_;
  }
  changed_.notify_all();
  if (reply) {
    ++submitting_;
    for (const auto& text : texts) {
      sink->on_result(request_id, core::ToolSuccess{{text}});
    }
    --submitting_;
  }
}

void
FakeCallEngine::set_reply_texts(std::vector<std::string> texts)
{
  const std::lock_guard lock(mutex_);
  reply_texts_ = std::move(texts);
}

std::vector<FakeCallEngine::Undelivered>
FakeCallEngine::undelivered_calls() const
{
  const std::lock_guard lock(mutex_);
  return undelivered_;
}

bool
FakeCallEngine::wait_for_undelivered(std::size_t n, std::chrono::milliseconds timeout)
{
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] { return undelivered_.size() >= n; });
}

bool
FakeCallEngine::cancel(std::string_view session_id, std::string_view request_id)
{
  const std::lock_guard lock(mutex_);
  cancels_.emplace_back(std::string(session_id), std::string(request_id));
  return cancel_result_;
}

void
FakeCallEngine::undelivered(const std::string& session_id,
                            const std::vector<std::string>& request_ids)
{
  {
    const std::lock_guard lock(mutex_);
    undelivered_.push_back(Undelivered{session_id, request_ids, submitting_ > 0});
  }
  changed_.notify_all();
}

void
FakeCallEngine::attach_session(const std::string& session_id,
                               const std::shared_ptr<core::CallSink>& /*sink*/)
{
  {
    const std::lock_guard lock(mutex_);
    attached_.push_back(session_id);
  }
  changed_.notify_all();
}

nlohmann::json
FakeCallEngine::list_tools() const
{
  return nlohmann::json::array(
      {{{"name", "echo"}, {"description", "fake"}, {"inputSchema", {{"type", "object"}}}}});
}

void
FakeCallEngine::set_auto_reply(bool on)
{
  const std::lock_guard lock(mutex_);
  auto_reply_ = on;
}

void
FakeCallEngine::set_cancel_result(bool found)
{
  const std::lock_guard lock(mutex_);
  cancel_result_ = found;
}

bool
FakeCallEngine::wait_for_calls(std::size_t n, std::chrono::milliseconds timeout)
{
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] { return calls_.size() >= n; });
}

bool
FakeCallEngine::wait_for_attaches(std::size_t n, std::chrono::milliseconds timeout)
{
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] { return attached_.size() >= n; });
}

std::vector<FakeCallEngine::Submitted>
FakeCallEngine::calls() const
{
  const std::lock_guard lock(mutex_);
  return calls_;
}

std::vector<std::pair<std::string, std::string>>
FakeCallEngine::cancels() const
{
  const std::lock_guard lock(mutex_);
  return cancels_;
}

std::vector<std::string>
FakeCallEngine::attached_sessions() const
{
  const std::lock_guard lock(mutex_);
  return attached_;
}

} // namespace exai::test
