#include "net/mcp/mcp_http_call.hpp"

#include "core/error.hpp"
#include "core/util/text.hpp"

#include <variant>

namespace exai::net {

namespace {

using nlohmann::json;
namespace mcp = core::mcp;

// An SSE comment this often lets a stream notice a client that went away.
constexpr auto kKeepAlive = std::chrono::seconds(10);

std::string
sse_event(const mcp::EventId& base, std::uint64_t seq, std::string_view data)
{
  mcp::EventId id = base;
  id.seq = seq;
  return "id: " + id.text() + "\nevent: message\ndata: " + std::string(data) + "\n\n";
}

} // namespace

// The listener of one response stream: forwards to the call while it is the
// call's current stream (the call holds it; the stream only weakly).
class McpHttpCall::Watch final : public ResponseStream::Listener {
public:
  Watch(std::weak_ptr<McpHttpCall> call, const ResponseStream* stream)
      : call_(std::move(call))
      , stream_(stream)
  {
  }
  void on_stream_closed() noexcept override
  {
    if (const auto call = call_.lock()) {
      call->on_stream_closed(stream_);
    }
  }
  void on_stream_tick(SteadyClock::time_point now) noexcept override
  {
    if (const auto call = call_.lock()) {
      call->on_stream_tick(stream_, now);
    }
  }

private:
  std::weak_ptr<McpHttpCall> call_;
  const ResponseStream* stream_; // identity only
};

McpHttpCall::McpHttpCall(Setup setup)
    : setup_(std::move(setup))
    , translator_(setup_.id, setup_.progress_token, Clock::now())
    , seq_(setup_.events.seq) // a call taken over continues its stream's numbering
{
}

void
McpHttpCall::watch(const std::shared_ptr<ResponseStream>& stream)
{
  stream_ = stream;
  watch_ = std::make_shared<Watch>(weak_from_this(), stream.get());
  stream_->set_listener(watch_);
}

void
McpHttpCall::attach(const std::shared_ptr<ResponseStream>& stream)
{
  const std::lock_guard lock(mutex_);
  watch(stream);
  if (setup_.sse) {
    // The priming event: an id before any data, so that a client whose
    // stream breaks before the first progress can still resume.
    stream_->write("id: " + setup_.events.text() + "\nretry: " + std::to_string(kRetry.count()) +
                   "\ndata: \n\n");
  }
}

void
McpHttpCall::resume(const std::shared_ptr<ResponseStream>& stream, std::uint64_t after)
{
  core::Scheduler::Handle timer; // reset outside the lock (its task takes it)
  {
    const std::lock_guard lock(mutex_);
    timer = std::move(orphan_timer_);
    if (stream_ && stream_ != stream) {
      stream_->end(); // one live stream per call: the newest client wins
    }
    watch(stream);
    std::string missed;
    for (const auto& [seq, message] : kept_) {
      if (seq > after) {
        missed += sse_event(setup_.events, seq, message);
      }
    }
    if (final_ && final_->first > after) {
      missed += sse_event(setup_.events, final_->first, final_->second);
    }
    stream_->write(std::move(missed));
    if (done_) {
      stream_->end();
    }
  }
  setup_.log->info("mcp stream resumed request_id={} after={}", setup_.request_id, after);
}

void
McpHttpCall::on_progress(std::string_view /*request_id*/,
                         std::string_view /*tool*/,
                         std::string_view note) noexcept
{
  const std::lock_guard lock(mutex_);
  if (!done_ && setup_.sse) {
    if (auto message = translator_.on_progress(note, Clock::now())) {
      emit(*message);
    }
  }
}

void
McpHttpCall::on_ack(std::string_view /*request_id*/,
                    std::string_view /*tool*/,
                    std::chrono::milliseconds /*timeout*/) noexcept
{
  const std::lock_guard lock(mutex_);
  if (!done_ && setup_.sse) {
    if (auto message = translator_.on_ack(Clock::now())) {
      emit(*message);
    }
  }
}

bool
McpHttpCall::on_result(std::string_view /*request_id*/, const core::ToolResult& result) noexcept
{
  bool written = false;
  bool kept = false;
  {
    const std::lock_guard lock(mutex_);
    if (done_) {
      return false;
    }
    done_ = true;
    // Not waited for: this runs inside the engine's answer, under its call's
    // lock, and a grace timer firing now needs that lock for its cancel. It
    // finds done_ set, or cancels a call that has just answered (a no-op).
    orphan_timer_.abandon();
    try {
      if (cancelled_) {
        // notifications/cancelled: MCP sends no response for that request.
        if (stream_) {
          stream_->end();
        }
      } else if (setup_.sse && hand_off(result)) {
        // The stream stays open without a result: when this process exits
        // the client resumes, and the next daemon runs the call.
        written = true;
      } else if (setup_.sse) {
        log_outcome(result);
        const std::string response = translator_.on_result(result);
        final_.emplace(++seq_, response);
        if (stream_) {
          written = stream_->write(sse_event(setup_.events, seq_, response));
          stream_->end();
        }
      } else if (setup_.deliver) {
        setup_.deliver(translator_.on_result(result));
        written = true;
      } else if (stream_) {
        written = stream_->write(translator_.on_result(result));
        stream_->end();
      }
    } catch (const std::exception&) {
      if (stream_) {
        stream_->end();
      }
    }
    kept = setup_.sse && !cancelled_; // kept for a resuming client
  }
  if (setup_.on_finished) {
    setup_.on_finished();
  }
  return written || kept;
}

std::size_t
McpHttpCall::kept_bytes()
{
  const std::lock_guard lock(mutex_);
  std::size_t bytes = final_ ? final_->second.size() : 0;
  for (const auto& [seq, message] : kept_) {
    bytes += message.size();
  }
  return bytes;
}

void
McpHttpCall::stop_timer()
{
  core::Scheduler::Handle timer;
  const std::lock_guard lock(mutex_);
  timer = std::move(orphan_timer_);
}

void
McpHttpCall::cancel_from_client()
{
  {
    const std::lock_guard lock(mutex_);
    if (done_) {
      return;
    }
    cancelled_ = true;
  }
  setup_.engine->cancel(setup_.session_id, setup_.request_id);
}

void
McpHttpCall::on_stream_closed(const ResponseStream* stream) noexcept
{
  {
    const std::lock_guard lock(mutex_);
    if (done_ || cancelled_ || stream_.get() != stream) {
      return;
    }
    if (setup_.sse) {
      // The client may come back with Last-Event-ID; give it resume_grace.
      stream_.reset();
      watch_.reset();
      try {
        orphan_timer_ =
            setup_.scheduler->at(Clock::now() + setup_.resume_grace, [weak = weak_from_this()] {
              if (const auto call = weak.lock()) {
                call->orphaned();
              }
            });
        setup_.log->info("mcp stream broke; the call waits {} ms for a resume request_id={}",
                         setup_.resume_grace.count(),
                         setup_.request_id);
        return;
      } catch (const std::exception&) {
        // No timer: cancel now rather than hold capacity for nobody.
      }
    }
    cancelled_ = true;
  }
  setup_.log->info("mcp client went away; cancelling request_id={}", setup_.request_id);
  try {
    setup_.engine->cancel(setup_.session_id, setup_.request_id);
  } catch (const std::exception&) {
    // The call ends at its deadline instead.
  }
}

void
McpHttpCall::orphaned()
{
  {
    const std::lock_guard lock(mutex_);
    if (done_ || cancelled_ || stream_) {
      return; // finished, or a client resumed meanwhile
    }
    cancelled_ = true;
  }
  setup_.log->info("mcp stream not resumed in time; cancelling request_id={}", setup_.request_id);
  setup_.engine->cancel(setup_.session_id, setup_.request_id);
}

void
McpHttpCall::on_stream_tick(const ResponseStream* stream, SteadyClock::time_point now) noexcept
{
  const std::lock_guard lock(mutex_);
  if (done_ || !setup_.sse || !stream_ || stream_.get() != stream) {
    return;
  }
  try {
    if (auto beat = translator_.heartbeat(now)) {
      emit(*beat);
    } else if (now - last_write_ >= kKeepAlive) {
      stream_->write(": keepalive\n\n");
      last_write_ = now;
    }
  } catch (const std::exception&) {
    // A skipped heartbeat loses nothing.
  }
}

std::string
McpHttpCall::lost_stream_body(const mcp::EventId& last, std::string_view text)
{
  return sse_event(last, last.seq + 1, mcp::tool_error_response(last.request_id, text));
}

bool
McpHttpCall::hand_off(const core::ToolResult& result)
{
  const auto* failure = std::get_if<core::ToolFailure>(&result);
  if (failure == nullptr || failure->code != core::Errc::shutting_down ||
      setup_.handoff == nullptr || !setup_.handoff->enabled()) {
    return false;
  }
  constexpr std::string_view kPrefix = "mcp:";
  const std::string session = setup_.session_id.substr(kPrefix.size());
  if (!setup_.handoff->put(McpHandoff{session,
                                      setup_.events.stream_key(),
                                      setup_.id,
                                      setup_.progress_token,
                                      setup_.tool,
                                      setup_.arguments})) {
    return false;
  }
  setup_.log->info("mcp call handed to the next daemon request_id={}", setup_.request_id);
  return true;
}

bool
McpHttpCall::emit(const std::string& message)
{
  ++seq_;
  kept_.emplace_back(seq_, message);
  if (kept_.size() > kReplayEvents) {
    kept_.pop_front();
  }
  last_write_ = Clock::now();
  return stream_ && stream_->write(sse_event(setup_.events, seq_, message));
}

void
McpHttpCall::log_outcome(const core::ToolResult& result)
{
  if (!setup_.log_level) {
    return;
  }
  const auto* failure = std::get_if<core::ToolFailure>(&result);
  const auto note = mcp::call_outcome_notification(
      *setup_.log_level,
      setup_.request_id,
      core::printable(setup_.tool, 64),
      failure != nullptr ? core::protocol_code(failure->code) : std::string_view(),
      failure != nullptr ? std::string_view(failure->message) : std::string_view());
  if (note) {
    emit(*note);
  }
}

} // namespace exai::net
