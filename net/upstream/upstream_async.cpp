// UpstreamClient::start: a model call on the transfer loop bound to this
// thread. The same request, judge, retry policy and breaker as complete();
// what differs is who waits: no thread blocks on the provider or on a
// backoff, the loop calls back when the answer is in or a timer is due.

#include "core/log.hpp"
#include "core/providers/openai_format.hpp"
#include "net/upstream/transfer_loop.hpp"
#include "net/upstream/upstream_client.hpp"
#include "net/upstream/upstream_client_parts.hpp"

#include <Poco/String.h>

#include <memory>
#include <utility>

namespace exai::net {

using namespace upstream_detail;

// One call in flight: its attempts follow one another on the loop thread.
// Owned by the callbacks that wait for it (the exchange's handlers, the
// backoff timer), so it lives exactly as long as something can still end it.
struct UpstreamClient::AsyncChat : std::enable_shared_from_this<AsyncChat> {
  AsyncChat(const UpstreamClient& c,
            TransferLoop& l,
            Admitted a,
            core::ChatRequest r,
            std::stop_token s,
            core::ChatDone d)
      : client(c)
      , loop(l)
      , admitted(std::move(a))
      , request(std::move(r))
      , stop(std::move(s))
      , done(std::move(d))
  {
  }

  const UpstreamClient& client;
  TransferLoop& loop;
  Admitted admitted;
  core::ChatRequest request;
  std::stop_token stop;
  core::ChatDone done;
  std::string body;
  nlohmann::json details = nlohmann::json::object();
  int attempts = 0;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();

  // The attempt in progress.
  Attempt attempt;
  std::chrono::steady_clock::time_point attempt_started;
  std::chrono::milliseconds read_timeout{0};
  std::optional<core::openai::ChatStream> events; // a 2xx event-stream answer
  bool head_seen = false;
  bool too_large = false;
  std::size_t total = 0;
  std::size_t reported = 0;

  const UpstreamEndpoint& endpoint() const { return admitted.provider->endpoint; }
  std::string where() const
  {
    return admitted.provider->host + ":" + std::to_string(admitted.provider->port);
  }

  void next();
  bool piece(const TransferResult& head, std::string_view bytes);
  void answered(TransferResult result);
  void read(TransferResult& result);
  void fail(core::Errc code, std::string message, bool provider_fault);
  // Ends the call later on the loop thread: next() may run inside start().
  void fail_soon(core::Errc code, std::string message, bool provider_fault)
  {
    loop.defer([self = shared_from_this(), code, message = std::move(message), provider_fault] {
      self->fail(code, message, provider_fault);
    });
  }
  void end(core::ChatOutcome outcome)
  {
    auto call = std::move(done);
    done = nullptr;
    if (call) {
      call(std::move(outcome));
    }
  }
};

void
UpstreamClient::AsyncChat::next()
{
  const auto& name = endpoint().display_name;
  if (stop.stop_requested()) {
    fail_soon(core::Errc::cancelled, "cancelled while calling " + name, false);
    return;
  }
  const auto left = request.deadline - std::chrono::steady_clock::now();
  if (left <= std::chrono::milliseconds(0)) {
    fail_soon(
        core::Errc::timeout, "the call's deadline passed before " + name + " answered", false);
    return;
  }
  ++attempts;
  client.log_->debug("upstream request provider={} model={} attempt={} on=loop",
                     endpoint().id,
                     request.model,
                     attempts);
  attempt = Attempt{};
  attempt_started = std::chrono::steady_clock::now();
  events.reset();
  head_seen = false;
  too_large = false;
  total = 0;
  reported = 0;

  const bool stream = client.options_.stream;
  TransferRequest out;
  out.pool = endpoint().id;
  out.url = admitted.provider->chat_url;
  out.headers = {admitted.provider->authorization,
                 stream ? "Accept: text/event-stream" : "Accept: application/json",
                 "User-Agent: exai/" EXAI_VERSION,
                 "Content-Type: application/json"};
  out.body = body;
  read_timeout =
      std::min(endpoint().read_timeout, std::chrono::ceil<std::chrono::milliseconds>(left));
  out.read_timeout = read_timeout;
  out.connect_timeout = std::min(endpoint().connect_timeout, out.read_timeout);
  out.stall_timeout = stream ? client.options_.stall_timeout : std::chrono::milliseconds(0);
  out.deadline = request.deadline;
  out.max_body = client.options_.max_response_bytes;
  out.max_idle = std::chrono::duration_cast<std::chrono::seconds>(client.options_.idle_timeout);
  out.ca_file = client.options_.ca_file;
  TransferHandlers handlers;
  auto self = shared_from_this();
  if (stream) {
    handlers.on_body = [self](const TransferResult& head, std::string_view bytes) {
      return self->piece(head, bytes);
    };
  }
  handlers.on_done = [self](TransferResult result) { self->answered(std::move(result)); };
  loop.start(std::move(out), std::move(handlers), stop);
}

bool
UpstreamClient::AsyncChat::piece(const TransferResult& head, std::string_view bytes)
{
  const std::size_t limit = client.options_.max_response_bytes;
  if (!head_seen) {
    head_seen = true;
    if (head.status >= 200 && head.status < 300 &&
        head.header("Content-Type").starts_with("text/event-stream")) {
      events.emplace(request.model, limit);
    }
  }
  total += bytes.size();
  if (total > limit) {
    too_large = true;
    return false;
  }
  if (!events) {
    attempt.body.append(bytes); // a plain answer to a streamed request
    return true;
  }
  if (!events->feed(bytes)) {
    attempt.stream_abandoned = true; // an error or malformed event: the rest is useless
    return false;
  }
  if (!attempt.first_token && events->started()) {
    attempt.first_token = since(attempt_started);
  }
  if (request.on_partial && events->received() != reported && !events->content().empty()) {
    reported = events->received();
    request.on_partial(events->content());
  }
  return true;
}

// The exchange's end as the judge reads it (the same kinds and messages as
// the blocking path's).
void
UpstreamClient::AsyncChat::read(TransferResult& result)
{
  Attempt& a = attempt;
  const std::string at = where();
  a.latency = since(attempt_started);
  a.status = result.status;
  for (auto& [name, value] : result.headers) {
    a.headers[core::to_lower_ascii(name)] = value;
  }
  if (const auto it = a.headers.find("retry-after"); it != a.headers.end()) {
    a.retry_after = it->second;
  }
  const auto& key = endpoint().api_key;
  const auto error = [&](Attempt::Kind kind, const std::string& message) {
    a.kind = kind;
    a.error = scrub(message, key);
  };
  if (too_large || result.error == TransferError::too_large) {
    error(Attempt::Kind::truncated,
          (events ? "the stream exceeds " : "response from " + at + " exceeds ") +
              std::to_string(client.options_.max_response_bytes) + " bytes");
    return;
  }
  switch (result.error) {
  case TransferError::none:
  case TransferError::aborted: // only piece() refuses: an abandoned stream
    a.kind = Attempt::Kind::response;
    if (events) {
      a.streamed = events->finish();
    } else if (!head_seen) {
      a.body = std::move(result.body);
    }
    return;
  case TransferError::too_large:
    return; // read above
  case TransferError::connect:
    error(Attempt::Kind::connect_error, "cannot connect to " + at + ": " + result.message);
    return;
  case TransferError::tls:
    error(Attempt::Kind::tls_error,
          (result.message.find("certificate") != std::string::npos
               ? "TLS certificate verification failed for "
               : "TLS handshake failed with ") +
              at + ": " + result.message);
    return;
  case TransferError::timeout:
    error(Attempt::Kind::read_timeout,
          "no answer from " + at + " within " + std::to_string(read_timeout.count()) + " ms");
    return;
  case TransferError::stalled:
    error(Attempt::Kind::stalled,
          "the stream from " + at + " sent nothing for " +
              std::to_string(client.options_.stall_timeout.count()) + " ms");
    return;
  case TransferError::broken:
    error(result.answered ? Attempt::Kind::truncated : Attempt::Kind::connect_error,
          "connection to " + at + " failed: " + result.message);
    return;
  case TransferError::cancelled:
  case TransferError::shutdown:
    error(Attempt::Kind::cancelled, result.message);
    return;
  }
}

void
UpstreamClient::AsyncChat::answered(TransferResult result)
{
  read(result);
  const auto& name = endpoint().display_name;
  if (attempt.kind == Attempt::Kind::cancelled || stop.stop_requested()) {
    fail(core::Errc::cancelled, "cancelled while calling " + name, false);
    return;
  }
  Verdict verdict = client.judge(*admitted.provider, attempt, request, details);
  if (verdict.reply) {
    verdict.reply->attempts = attempts;
    admitted.pass.success();
    client.log_->debug("upstream ok provider={} model={} attempts={} latency_ms={} streamed={}",
                       endpoint().id,
                       verdict.reply->model,
                       attempts,
                       attempt.latency.count(),
                       verdict.reply->streamed);
    end(std::move(*verdict.reply));
    return;
  }
  if (verdict.retryable) {
    const auto delay = client.retry_->next_delay(attempts, verdict.retry_after, since(started));
    const auto now = std::chrono::steady_clock::now();
    if (delay && now + *delay < request.deadline) {
      client.log_->warn("upstream retry provider={} attempt={} delay_ms={} reason=\"{}\"",
                        endpoint().id,
                        attempts,
                        delay->count(),
                        truncate(scrub(verdict.message, endpoint().api_key), 200));
      loop.at(now + *delay, stop, [self = shared_from_this()](bool fired) {
        if (fired) {
          self->next();
        } else {
          self->fail(core::Errc::cancelled,
                     "cancelled while calling " + self->endpoint().display_name,
                     false);
        }
      });
      return;
    }
    if (attempts > 1) {
      verdict.message += " (after " + std::to_string(attempts) + " attempts)";
    }
  }
  fail(verdict.code, verdict.message, verdict.provider_fault);
}

void
UpstreamClient::AsyncChat::fail(core::Errc code, std::string message, bool provider_fault)
{
  core::ChatFailure failure =
      client.failed(admitted, code, std::move(message), provider_fault, attempts, details);
  if (code == core::Errc::cancelled) {
    client.log_->debug("upstream cancelled provider={} attempts={}", endpoint().id, attempts);
  } else {
    client.log_->warn("upstream failed provider={} code={} attempts={} error=\"{}\"",
                      endpoint().id,
                      core::protocol_code(code),
                      attempts,
                      failure.message);
  }
  end(std::move(failure));
}

bool
UpstreamClient::starts_here() const
{
  return TransferLoop::here() != nullptr;
}

bool
UpstreamClient::start(std::string_view provider_id,
                      core::ChatRequest request,
                      std::stop_token stop,
                      core::ChatDone done)
{
  TransferLoop* loop = TransferLoop::here();
  if (loop == nullptr) {
    return false;
  }
  // An outcome known at once still arrives later, as start() promises.
  const auto end_soon = [&](core::ChatOutcome outcome) {
    loop->defer([done = std::move(done), outcome = std::move(outcome)]() mutable {
      done(std::move(outcome));
    });
    return true;
  };
  if (stop.stop_requested()) {
    return end_soon(core::ChatFailure{core::Errc::cancelled,
                                      "cancelled before the request was sent",
                                      {{"provider", std::string(provider_id)}}});
  }
  nlohmann::json details = nlohmann::json::object();
  auto ready = usable(provider_id, details);
  if (auto* refusal = std::get_if<core::ChatFailure>(&ready)) {
    return end_soon(std::move(*refusal));
  }
  std::string body;
  try {
    body = core::openai::chat_request_body(request, options_.stream, base64);
  } catch (const std::exception& e) {
    std::get<Admitted>(ready).pass.neutral();
    return end_soon(
        core::ChatFailure{core::Errc::internal_error, e.what(), nlohmann::json::object()});
  }
  auto call = std::make_shared<AsyncChat>(*this,
                                          *loop,
                                          std::move(std::get<Admitted>(ready)),
                                          std::move(request),
                                          std::move(stop),
                                          std::move(done));
  call->body = std::move(body);
  call->details = std::move(details);
  call->next();
  return true;
}

} // namespace exai::net
