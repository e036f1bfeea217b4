#include "net/upstream/upstream_client.hpp"

#include "core/log.hpp"
#include "core/providers/chat_stream.hpp"
#include "core/providers/openai_format.hpp"
#include "core/util/enum_names.hpp"
#include "net/upstream/ssl_init.hpp"
#include "net/upstream/transfer_loop.hpp"
#include "net/upstream/upstream_client_parts.hpp"
#include "net/util/poco_time.hpp"

#include <Poco/Base64Encoder.h>
#include <Poco/Exception.h>
#include <Poco/Net/Context.h>
#include <Poco/Net/HTMLForm.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/SSLException.h>
#include <Poco/Net/SecureStreamSocket.h>
#include <Poco/Net/Session.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/Net/StringPartSource.h>
#include <Poco/SHA2Engine.h>
#include <Poco/URI.h>

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <sstream>
#include <thread>
#include <utility>

namespace exai::net {

namespace upstream_detail {

std::string
base64(std::string_view bytes)
{
  std::ostringstream out;
  Poco::Base64Encoder encoder(out);
  encoder.rdbuf()->setLineLength(0);
  encoder.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  encoder.close();
  return out.str();
}

std::chrono::milliseconds
since(std::chrono::steady_clock::time_point start)
{
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               start);
}

std::string
scrub(std::string text, const std::string& secret)
{
  if (secret.empty()) {
    return text;
  }
  const std::string replacement = core::log::redact(secret);
  for (auto pos = text.find(secret); pos != std::string::npos;
       pos = text.find(secret, pos + replacement.size())) {
    text.replace(pos, secret.size(), replacement);
  }
  return text;
}

std::string
truncate(const std::string& text, std::size_t limit)
{
  if (text.size() <= limit) {
    return text;
  }
  return text.substr(0, limit) + "...(" + std::to_string(text.size()) + " bytes)";
}

} // namespace upstream_detail

using namespace upstream_detail;

namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr milliseconds kConnectPollSlice{10};

// Waits on a condition variable that the stop token wakes.
bool
interruptible_sleep(milliseconds delay, std::stop_token stop)
{
  std::mutex mutex;
  std::condition_variable_any wake;
  std::unique_lock lock(mutex);
  wake.wait_for(lock, stop, delay, [] { return false; });
  return !stop.stop_requested();
}

} // namespace

std::string_view
to_string(ProbeResult::Status status) noexcept
{
  static constexpr core::EnumNames<ProbeResult::Status, 3> kNames{
      {"reachable", "auth_failed", "unreachable"}, "unreachable"};
  return kNames(status);
}

std::vector<UpstreamEndpoint>
endpoints_from(const core::ProviderRegistry& registry, const core::DaemonConfig& config)
{
  std::vector<UpstreamEndpoint> out;
  for (const auto* provider : registry.configured()) {
    UpstreamEndpoint endpoint;
    endpoint.id = provider->id;
    endpoint.display_name = provider->display_name;
    endpoint.base_url = provider->base_url;
    endpoint.api_key = provider->api_key;
    endpoint.read_timeout = std::chrono::duration_cast<milliseconds>(provider->read_timeout);
    endpoint.pool_size =
        provider->id == core::kKimiProviderId ? config.kimi_max_inflight : config.glm_max_inflight;
    out.push_back(std::move(endpoint));
  }
  return out;
}

UpstreamOptions
upstream_options_from(const core::Settings& settings, const core::DaemonConfig& config)
{
  UpstreamOptions options;
  options.ca_file = settings.get_nonempty("EXAI_CA_FILE").value_or("");
  options.idle_timeout = config.upstream_idle;
  options.stream = config.upstream_stream;
  options.stall_timeout = config.upstream_stall;
  return options;
}

UpstreamClient::UpstreamClient(std::vector<UpstreamEndpoint> endpoints,
                               UpstreamOptions options,
                               std::shared_ptr<spdlog::logger> log)
    : options_(std::move(options))
    , log_(log ? std::move(log) : core::log::get("net"))
    , retry_(std::make_unique<core::RetryPolicy>(options_.retry,
                                                 options_.seed.value_or(std::random_device{}())))
{
  if (!options_.sleeper) {
    options_.sleeper = interruptible_sleep;
  }
  for (auto& endpoint : endpoints) {
    auto provider = std::make_unique<Provider>(std::move(endpoint), options_);
    const std::string& url = provider->endpoint.base_url;
    try {
      const Poco::URI uri(url);
      provider->https = uri.getScheme() == "https";
      if (!provider->https && uri.getScheme() != "http") {
        throw core::Error(core::Errc::config_invalid,
                          "base URL " + url + " of " + provider->endpoint.display_name +
                              " must start with http:// or https://");
      }
      provider->host = uri.getHost();
      provider->port = uri.getPort();
      provider->path_prefix = uri.getPath();
      while (!provider->path_prefix.empty() && provider->path_prefix.back() == '/') {
        provider->path_prefix.pop_back();
      }
      const bool bracket = provider->host.find(':') != std::string::npos; // an IPv6 literal
      provider->chat_url = (provider->https ? "https://" : "http://") +
                           (bracket ? "[" + provider->host + "]" : provider->host) + ":" +
                           std::to_string(provider->port) + provider->path_prefix +
                           "/chat/completions";
    } catch (const Poco::Exception& e) {
      throw core::Error(core::Errc::config_invalid,
                        "base URL " + url + " of " + provider->endpoint.display_name +
                            " is invalid: " + e.displayText());
    }
    if (provider->https) {
      ensure_ssl_initialized();
      const bool custom_ca = !options_.ca_file.empty();
      try {
        // Verification on (VERIFY_STRICT verifies the server's chain, and
        // SecureSocketImpl checks the host name); system store unless
        // EXAI_CA_FILE names a bundle, which then replaces it.
        provider->context = new Poco::Net::Context(Poco::Net::Context::TLS_CLIENT_USE,
                                                   "",
                                                   "",
                                                   custom_ca ? options_.ca_file : "",
                                                   Poco::Net::Context::VERIFY_STRICT,
                                                   9,
                                                   !custom_ca,
                                                   "HIGH:!aNULL:!MD5:@STRENGTH");
      } catch (const Poco::Exception& e) {
        throw core::Error(core::Errc::config_invalid,
                          "EXAI_CA_FILE=" + options_.ca_file +
                              " cannot be used as a CA bundle: " + e.displayText());
      }
      // Fresh connections resume the last TLS session (one round trip, no
      // certificate chain) instead of a full handshake.
      provider->context->enableSessionCache(true);
    }
    provider->authorization = "Authorization: Bearer " + provider->endpoint.api_key;
    const std::string id = provider->endpoint.id;
    providers_.emplace(id, std::move(provider));
  }
  if (options_.idle_timeout > milliseconds(0)) {
    reaper_ = std::jthread([this](const std::stop_token& stop) { reap(stop); });
  }
}

UpstreamClient::~UpstreamClient() = default;

void
UpstreamClient::reap(const std::stop_token& stop)
{
  // Wakes at the next expiry, at least every second: a connection given back
  // while it waits is closed at most that much after its time.
  constexpr milliseconds kLongestWait{1000};
  std::mutex mutex;
  std::condition_variable_any wake;
  while (!stop.stop_requested()) {
    auto next = Clock::now() + kLongestWait;
    for (const auto& [id, provider] : providers_) {
      if (const auto left = provider->pool.sweep()) {
        next = std::min(next, Clock::now() + std::max(milliseconds(1), *left));
      }
    }
    std::unique_lock lock(mutex);
    wake.wait_until(lock, stop, next, [] { return false; });
  }
}

core::UpstreamPoolStats
UpstreamClient::pool_stats(std::string_view provider_id) const
{
  const Provider* provider = find(provider_id);
  if (provider == nullptr) {
    return {};
  }
  core::UpstreamPoolStats stats = provider->pool.stats();
  stats += TransferLoop::all_stats(provider_id);
  return stats;
}

UpstreamClient::Provider*
UpstreamClient::find(std::string_view provider_id) const
{
  const auto it = providers_.find(provider_id);
  return it == providers_.end() ? nullptr : it->second.get();
}

std::variant<UpstreamClient::Admitted, core::ChatFailure>
UpstreamClient::usable(std::string_view provider_id, nlohmann::json& details) const
{
  Provider* provider = find(provider_id);
  if (provider == nullptr) {
    return core::ChatFailure{core::Errc::provider_unavailable,
                             "provider " + std::string(provider_id) + " is not configured",
                             {{"provider", std::string(provider_id)}}};
  }
  details["provider"] = provider->endpoint.id;
  auto pass = provider->breaker.admit();
  if (!pass) {
    const auto retry_in = provider->breaker.retry_in().count();
    details["circuit"] = "open";
    details["retry_in_ms"] = retry_in;
    std::string message = provider->endpoint.display_name;
    message.append(" is unavailable: circuit open after repeated failures; next probe in ")
        .append(std::to_string(retry_in))
        .append(" ms");
    return core::ChatFailure{core::Errc::provider_unavailable, std::move(message), details};
  }
  return Admitted{provider, std::move(*pass)};
}

core::ChatFailure
UpstreamClient::failed(Admitted& admitted,
                       core::Errc code,
                       std::string message,
                       bool provider_fault,
                       int attempts,
                       nlohmann::json& details) const
{
  if (provider_fault) {
    admitted.pass.failure();
  } else {
    admitted.pass.neutral();
  }
  details["attempts"] = attempts;
  return core::ChatFailure{
      code, scrub(std::move(message), admitted.provider->endpoint.api_key), details};
}

std::string
UpstreamClient::circuit_state(std::string_view provider_id) const
{
  const Provider* provider = find(provider_id);
  return provider == nullptr ? "closed" : std::string(core::to_string(provider->breaker.state()));
}

std::unique_ptr<UpstreamConnection>
UpstreamClient::open_connection(Provider& provider,
                                milliseconds connect_timeout,
                                const std::stop_token& stop,
                                Attempt& failure) const
{
  const auto start = Clock::now();
  const std::string where = provider.host + ":" + std::to_string(provider.port);
  const auto fail = [&](Attempt::Kind kind, const std::string& message) {
    failure.kind = stop.stop_requested() ? Attempt::Kind::cancelled : kind;
    failure.error = scrub(message, provider.endpoint.api_key);
    failure.latency = since(start);
    return nullptr;
  };
  Poco::Net::StreamSocket socket;
  try {
    // Connect without blocking so that a stop request is seen within one poll slice.
    const Poco::Net::SocketAddress address(provider.host, provider.port);
    socket.connectNB(address);
    const auto deadline = start + connect_timeout;
    while (true) {
      if (stop.stop_requested()) {
        return fail(Attempt::Kind::cancelled, "cancelled");
      }
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
      if (left <= milliseconds(0)) {
        return fail(Attempt::Kind::connect_error,
                    "connect to " + where + " timed out after " +
                        std::to_string(connect_timeout.count()) + " ms");
      }
      if (socket.poll(to_timespan(std::min(left, kConnectPollSlice)),
                      Poco::Net::Socket::SELECT_WRITE | Poco::Net::Socket::SELECT_ERROR)) {
        break;
      }
    }
    if (const int error = socket.impl()->socketError(); error != 0) {
      return fail(Attempt::Kind::connect_error,
                  "cannot connect to " + where + ": " + std::strerror(error));
    }
    socket.setBlocking(true);
    socket.setNoDelay(true);
    socket.setReceiveTimeout(to_timespan(connect_timeout));
    socket.setSendTimeout(to_timespan(connect_timeout));
  } catch (const Poco::Exception& e) {
    return fail(Attempt::Kind::connect_error,
                "cannot connect to " + where + ": " + e.displayText());
  }

  // From here a stop request shuts the socket down, which wakes any blocking
  // read or write (TLS included) on this thread. Only a raw descriptor is
  // touched from the other thread, never Poco's or OpenSSL's state. It is a
  // dup() owned by the connection, so Poco closing its own descriptor (even
  // inside a failed handshake) can never leave the callback aiming at a
  // reused fd number; the descriptor outlives `on_stop`, whose destructor
  // waits for a running callback.
  auto connection = std::make_unique<UpstreamConnection>();
  connection->abort_fd.reset(::dup(socket.impl()->sockfd()));
  const std::stop_callback on_stop(stop, [fd = connection->abort_fd.get()] {
    if (fd >= 0) {
      ::shutdown(fd, SHUT_RDWR);
    }
  });
  try {
    if (provider.https) {
      Poco::Net::Session::Ptr resume;
      {
        const std::lock_guard lock(provider.tls_mutex);
        resume = provider.tls_session;
      }
      // A plain HTTPClientSession over the secure socket: HTTPSClientSession's
      // socket constructor insists on setting the port of a connected session.
      connection->session = std::make_unique<UpstreamSession>(
          Poco::Net::SecureStreamSocket::attach(socket, provider.host, provider.context, resume));
    } else {
      connection->session = std::make_unique<UpstreamSession>(socket);
    }
  } catch (const Poco::Exception& e) {
    const std::string text = e.displayText();
    const bool certificate = text.find("certificate") != std::string::npos ||
                             text.find("Certificate") != std::string::npos;
    return fail(Attempt::Kind::tls_error,
                std::string(certificate ? "TLS certificate verification failed for "
                                        : "TLS handshake failed with ") +
                    where + ": " + text);
  }
  return connection;
}

bool
UpstreamClient::Outgoing::within(const UpstreamEndpoint& endpoint,
                                 std::chrono::steady_clock::time_point deadline)
{
  const auto left = deadline - std::chrono::steady_clock::now();
  if (left <= milliseconds(0)) {
    return false;
  }
  read_timeout = std::min(endpoint.read_timeout, std::chrono::ceil<milliseconds>(left));
  connect_timeout = std::min(endpoint.connect_timeout, read_timeout);
  return true;
}

UpstreamClient::Attempt
UpstreamClient::attempt(Provider& provider,
                        const Outgoing& outgoing,
                        const std::stop_token& stop) const
{
  Attempt result = exchange(provider, outgoing, stop, true);
  if (result.kind == Attempt::Kind::stale) {
    provider.pool.count_stale_retry();
    log_->debug("upstream stale connection provider={} error=\"{}\"; resending on a fresh one",
                provider.endpoint.id,
                result.error);
    result = exchange(provider, outgoing, stop, false);
  }
  return result;
}

UpstreamClient::Attempt
UpstreamClient::exchange(Provider& provider,
                         const Outgoing& outgoing,
                         const std::stop_token& stop,
                         bool may_reuse) const
{
  Attempt result;
  const auto start = Clock::now();
  const std::string where = provider.host + ":" + std::to_string(provider.port);
  const auto fail = [&](Attempt::Kind kind, const std::string& message) {
    result.kind = stop.stop_requested() ? Attempt::Kind::cancelled : kind;
    result.error = scrub(message, provider.endpoint.api_key);
    result.latency = since(start);
    return result;
  };
  if (stop.stop_requested()) {
    return fail(Attempt::Kind::cancelled, "cancelled");
  }
  std::optional<ConnectionPool::Lease> lease;
  if (may_reuse) {
    lease = provider.pool.take();
  }
  if (!lease) {
    auto connection = open_connection(provider, outgoing.connect_timeout, stop, result);
    if (!connection) {
      return result;
    }
    lease.emplace(provider.pool.adopt(std::move(connection)));
  }
  const bool reused = lease->reused();
  UpstreamSession& session = *(*lease)->session;
  // Declared after the lease: unregistered before the descriptor closes.
  const std::stop_callback on_stop(stop, [fd = (*lease)->abort_fd.get()] {
    if (fd >= 0) {
      ::shutdown(fd, SHUT_RDWR);
    }
  });
  // Whether the failure can only mean a kept-alive connection the server had
  // already closed: nothing of an answer arrived, and it was not a timeout.
  const auto dead_or = [&](Attempt::Kind kind) {
    return reused && !stop.stop_requested() ? Attempt::Kind::stale : kind;
  };

  bool keep_alive = false;
  std::optional<milliseconds> server_hint;
  try {
    session.set_timeouts(to_timespan(outgoing.read_timeout), to_timespan(outgoing.read_timeout));
    Poco::Net::HTTPRequest request(
        outgoing.method, provider.path_prefix + outgoing.path, Poco::Net::HTTPMessage::HTTP_1_1);
    request.setHost(provider.host, provider.port);
    request.set("Authorization", "Bearer " + provider.endpoint.api_key);
    request.set("Accept", outgoing.stream != nullptr ? "text/event-stream" : "application/json");
    request.set("User-Agent", "exai/" EXAI_VERSION);
    request.setKeepAlive(options_.idle_timeout > milliseconds(0));
    for (const auto& [name, value] : outgoing.headers) {
      request.set(name, value);
    }
    if (!outgoing.body.empty()) {
      request.setContentType(outgoing.content_type);
      request.setContentLength(static_cast<std::streamsize>(outgoing.body.size()));
    }
    session.send(request, outgoing.body);
    if (!session.await_answer()) {
      return fail(dead_or(Attempt::Kind::connect_error),
                  where + " closed the connection without an answer");
    }
  } catch (const Poco::TimeoutException&) {
    return fail(Attempt::Kind::read_timeout,
                "no answer from " + where + " within " +
                    std::to_string(outgoing.read_timeout.count()) + " ms");
  } catch (const Poco::Exception& e) {
    return fail(dead_or(Attempt::Kind::connect_error),
                "connection to " + where + " failed: " + e.displayText());
  } catch (const std::exception& e) {
    return fail(dead_or(Attempt::Kind::connect_error),
                "connection to " + where + " failed: " + std::string(e.what()));
  }

  // An answer has begun: from here every failure is the provider's.
  bool in_stream = false;
  try {
    Poco::Net::HTTPResponse response;
    std::istream& in = session.receiveResponse(response);
    // A stall mid-body is then a timeout and a reset a reset, not a short body.
    in.exceptions(std::ios::badbit);
    result.status = static_cast<int>(response.getStatus());
    result.retry_after = response.get("Retry-After", "");
    for (const auto& [name, value] : response) {
      result.headers[core::to_lower_ascii(name)] = value;
    }
    const auto expected = response.getContentLength64();
    if (outgoing.stream != nullptr && result.status >= 200 && result.status < 300 &&
        response.getContentType().rfind("text/event-stream", 0) == 0) {
      in_stream = true;
      session.set_timeouts(to_timespan(options_.stall_timeout), to_timespan(outgoing.read_timeout));
      read_events(in, *outgoing.stream, start, result);
      if (stop.stop_requested()) {
        return fail(Attempt::Kind::cancelled, "cancelled");
      }
      if (result.kind == Attempt::Kind::truncated) {
        return fail(Attempt::Kind::truncated, result.error);
      }
    } else {
      std::array<char, 16384> buffer{};
      while (in) {
        in.read(buffer.data(), buffer.size());
        result.body.append(buffer.data(), static_cast<std::size_t>(in.gcount()));
        if (result.body.size() > options_.max_response_bytes) {
          return fail(Attempt::Kind::truncated,
                      "response from " + where + " exceeds " +
                          std::to_string(options_.max_response_bytes) + " bytes");
        }
      }
      if (stop.stop_requested()) {
        return fail(Attempt::Kind::cancelled, "cancelled");
      }
      if (expected != Poco::Net::HTTPMessage::UNKNOWN_CONTENT_LENGTH &&
          static_cast<std::uint64_t>(expected) != result.body.size()) {
        return fail(Attempt::Kind::truncated,
                    "connection to " + where + " closed mid-response (" +
                        std::to_string(result.body.size()) + " of " + std::to_string(expected) +
                        " bytes)");
      }
    }
    // Only an answer whose end the framing marks, read to that end, leaves
    // the connection clean.
    keep_alive = !result.stream_abandoned && response.getKeepAlive() &&
                 (expected != Poco::Net::HTTPMessage::UNKNOWN_CONTENT_LENGTH ||
                  response.getChunkedTransferEncoding());
    if (const auto hint = keep_alive_timeout(response.get("Keep-Alive", ""))) {
      server_hint = std::chrono::duration_cast<milliseconds>(*hint);
    }
  } catch (const Poco::TimeoutException&) {
    if (in_stream) {
      return fail(Attempt::Kind::stalled,
                  "the stream from " + where + " sent nothing for " +
                      std::to_string(options_.stall_timeout.count()) + " ms");
    }
    return fail(Attempt::Kind::read_timeout,
                "no answer from " + where + " within " +
                    std::to_string(outgoing.read_timeout.count()) + " ms");
  } catch (const Poco::Exception& e) {
    return fail(Attempt::Kind::truncated, "connection to " + where + " failed: " + e.displayText());
  } catch (const std::exception& e) {
    return fail(Attempt::Kind::truncated,
                "connection to " + where + " failed: " + std::string(e.what()));
  }
  if (provider.https && !reused) {
    // The answer has been read, so a TLS 1.3 session ticket has too.
    try {
      Poco::Net::SecureStreamSocket secure(session.socket());
      auto tls_session = secure.currentSession();
      const std::lock_guard lock(provider.tls_mutex);
      provider.tls_session = std::move(tls_session);
    } catch (const Poco::Exception&) {
      // No session to resume: the next connection makes a full handshake.
    }
  }
  if (keep_alive) {
    lease->release(server_hint);
  }
  result.kind = Attempt::Kind::response;
  result.latency = since(start);
  return result;
}

void
UpstreamClient::read_events(std::istream& in,
                            const core::ChatRequest& request,
                            Clock::time_point start,
                            Attempt& result) const
{
  core::openai::ChatStream events(request.model, options_.max_response_bytes);
  std::array<char, 16384> buffer{};
  std::size_t total = 0;
  std::size_t reported = 0;
  // One recv per wake-up: peek() refills the stream's buffer with what one
  // read returns, readsome() takes just that. A blocking read() would wait
  // for a full buffer and hide the pieces.
  while (in.peek() != std::char_traits<char>::eof()) {
    const auto n = static_cast<std::size_t>(in.readsome(buffer.data(), buffer.size()));
    total += n;
    if (total > options_.max_response_bytes) {
      result.kind = Attempt::Kind::truncated;
      result.error = "the stream exceeds " + std::to_string(options_.max_response_bytes) + " bytes";
      result.stream_abandoned = true;
      return;
    }
    if (!events.feed(std::string_view(buffer.data(), n))) {
      // An error or malformed event: the rest of this answer is useless.
      result.stream_abandoned = true;
      break;
    }
    if (!result.first_token && events.started()) {
      result.first_token = since(start);
    }
    if (request.on_partial && events.received() != reported && !events.content().empty()) {
      reported = events.received();
      request.on_partial(events.content());
    }
    // After [DONE] the body is still read to its end: the connection stays clean.
  }
  result.streamed = events.finish();
}

UpstreamClient::Verdict
UpstreamClient::judge(const Provider& provider,
                      Attempt& result,
                      const core::ChatRequest& request,
                      nlohmann::json& details) const
{
  const UpstreamEndpoint& endpoint = provider.endpoint;
  Verdict v;
  details.erase("status");
  details.erase("body");
  switch (result.kind) {
  case Attempt::Kind::response: {
    details["status"] = result.status;
    // Scrubbed before it is cut: a cut key is no longer found by scrub().
    // Only an answer that fails needs it: a good one is not copied and scanned.
    const auto kept_body = [&] {
      return truncate(scrub(result.body, endpoint.api_key), options_.max_error_body);
    };
    if (result.streamed) {
      if (auto* reply = std::get_if<core::ChatReply>(&*result.streamed)) {
        reply->upstream_latency = result.latency;
        reply->streamed = true;
        reply->time_to_first_token = result.first_token;
        v.reply = std::move(*reply);
        return v;
      }
      using Problem = core::openai::StreamProblem;
      const auto& problem = std::get<Problem>(*result.streamed);
      if (!problem.event.empty()) {
        details["body"] = truncate(scrub(problem.event, endpoint.api_key), options_.max_error_body);
      }
      switch (problem.kind) {
      case Problem::Kind::provider_error: {
        if (!problem.code.empty()) {
          details["upstream_code"] = problem.code;
        }
        // Judged like an error answer that came as a 500 (or GLM's 1302 as a 429).
        const auto c = core::openai::classify_status(
            problem.code == "1302" ? 429 : 500, endpoint.display_name, problem.code);
        v.code = c.code;
        v.retryable = c.retryable;
        v.provider_fault = c.provider_fault;
        v.message = endpoint.display_name +
                    " reported an error mid-stream: " + scrub(problem.what, endpoint.api_key);
        return v;
      }
      case Problem::Kind::incomplete:
        v.retryable = true;
        v.message = endpoint.display_name + " stream was cut off: " + problem.what;
        return v;
      case Problem::Kind::malformed:
      case Problem::Kind::too_large:
      case Problem::Kind::no_choices:
        v.message = endpoint.display_name + " returned an unreadable stream (" + problem.what + ")";
        return v;
      }
      return v;
    }
    if (result.status >= 200 && result.status < 300) {
      auto parsed = core::openai::parse_chat_reply(result.body, request.model);
      if (auto* reply = std::get_if<core::ChatReply>(&parsed)) {
        reply->upstream_latency = result.latency;
        v.reply = std::move(*reply);
        return v;
      }
      details["body"] = kept_body();
      v.message = endpoint.display_name + " returned an unreadable reply (" +
                  std::get<core::openai::ReplyProblem>(parsed).what + ")";
      return v;
    }
    const std::string body = kept_body();
    details["body"] = body;
    if (!result.retry_after.empty()) {
      v.retry_after = core::parse_retry_after(result.retry_after);
    }
    const std::string code = core::openai::error_code(result.body);
    if (!code.empty()) {
      details["upstream_code"] = code;
    }
    const auto c = core::openai::classify_status(result.status, endpoint.display_name, code);
    v.code = c.code;
    v.retryable = c.retryable;
    v.provider_fault = c.provider_fault;
    v.message = c.message + (result.body.empty() ? "" : ": " + body);
    return v;
  }
  case Attempt::Kind::connect_error:
  case Attempt::Kind::stale: // only after the fresh connection failed too
    v.retryable = true;
    v.code = core::Errc::provider_unavailable;
    v.message = endpoint.display_name + " is unreachable: " + result.error;
    return v;
  case Attempt::Kind::truncated:
    v.retryable = true;
    v.message = endpoint.display_name + " reply was cut off: " + result.error;
    return v;
  case Attempt::Kind::stalled:
    v.code = core::Errc::timeout;
    v.retryable = true;
    v.message = endpoint.display_name + " stalled: " + result.error;
    return v;
  case Attempt::Kind::read_timeout:
    v.code = core::Errc::timeout;
    v.message = endpoint.display_name + " timed out: " + result.error;
    return v;
  case Attempt::Kind::tls_error:
    v.code = core::Errc::provider_unavailable;
    v.message = result.error;
    return v;
  case Attempt::Kind::cancelled:
    v.code = core::Errc::cancelled;
    v.provider_fault = false;
    v.message = "cancelled while calling " + endpoint.display_name;
    return v;
  }
  return v;
}

core::ChatOutcome
UpstreamClient::complete(std::string_view provider_id,
                         const core::ChatRequest& request,
                         std::stop_token stop)
{
  using core::ChatFailure;
  using core::Errc;
  if (stop.stop_requested()) {
    return ChatFailure{Errc::cancelled,
                       "cancelled before the request was sent",
                       {{"provider", std::string(provider_id)}}};
  }
  nlohmann::json details = nlohmann::json::object();
  auto ready = usable(provider_id, details);
  if (auto* refusal = std::get_if<ChatFailure>(&ready)) {
    return std::move(*refusal);
  }
  Admitted& admitted = std::get<Admitted>(ready);
  Provider* provider = admitted.provider;
  const UpstreamEndpoint& endpoint = provider->endpoint;
  Outgoing chat;
  chat.path = "/chat/completions";
  chat.stream = options_.stream ? &request : nullptr;
  try {
    chat.body = core::openai::chat_request_body(request, options_.stream, base64);
  } catch (const std::exception& e) {
    return ChatFailure{Errc::internal_error, e.what(), nlohmann::json::object()};
  }
  const auto start = Clock::now();
  int attempts = 0;
  // Every exit reports to the breaker exactly once.
  const auto fail = [&](Errc code, std::string message, bool provider_fault) -> core::ChatOutcome {
    ChatFailure failure =
        failed(admitted, code, std::move(message), provider_fault, attempts, details);
    if (code == Errc::cancelled) {
      log_->debug("upstream cancelled provider={} attempts={}", endpoint.id, attempts);
    } else {
      log_->warn("upstream failed provider={} code={} attempts={} error=\"{}\"",
                 endpoint.id,
                 core::protocol_code(code),
                 attempts,
                 failure.message);
    }
    return failure;
  };

  while (true) {
    // The call's deadline (the engine's) bounds every attempt and backoff.
    if (!chat.within(endpoint, request.deadline)) {
      return fail(Errc::timeout,
                  "the call's deadline passed before " + endpoint.display_name + " answered",
                  false);
    }
    ++attempts;
    log_->debug(
        "upstream request provider={} model={} attempt={}", endpoint.id, request.model, attempts);
    Attempt result = attempt(*provider, chat, stop);
    if (result.kind == Attempt::Kind::cancelled || stop.stop_requested()) {
      return fail(Errc::cancelled, "cancelled while calling " + endpoint.display_name, false);
    }
    Verdict verdict = judge(*provider, result, request, details);
    if (verdict.reply) {
      verdict.reply->attempts = attempts;
      admitted.pass.success();
      log_->debug("upstream ok provider={} model={} attempts={} latency_ms={} streamed={}",
                  endpoint.id,
                  verdict.reply->model,
                  attempts,
                  result.latency.count(),
                  verdict.reply->streamed);
      return std::move(*verdict.reply);
    }
    if (verdict.retryable) {
      const auto delay = retry_->next_delay(attempts, verdict.retry_after, since(start));
      if (delay && std::chrono::steady_clock::now() + *delay < request.deadline) {
        log_->warn("upstream retry provider={} attempt={} delay_ms={} reason=\"{}\"",
                   endpoint.id,
                   attempts,
                   delay->count(),
                   truncate(scrub(verdict.message, endpoint.api_key), 200));
        if (!options_.sleeper(*delay, stop)) {
          return fail(Errc::cancelled, "cancelled while calling " + endpoint.display_name, false);
        }
        continue;
      }
      if (attempts > 1) {
        verdict.message += " (after " + std::to_string(attempts) + " attempts)";
      }
    }
    return fail(verdict.code, verdict.message, verdict.provider_fault);
  }
}

ProbeResult
UpstreamClient::probe(std::string_view provider_id, milliseconds timeout, std::stop_token stop)
{
  ProbeResult probe;
  Provider* provider = find(provider_id);
  if (provider == nullptr) {
    probe.message = "provider " + std::string(provider_id) + " is not configured";
    return probe;
  }
  Outgoing models;
  models.method = Poco::Net::HTTPRequest::HTTP_GET;
  models.path = "/models";
  models.connect_timeout = timeout;
  models.read_timeout = timeout;
  const Attempt result = attempt(*provider, models, stop);
  probe.latency = result.latency;
  probe.http_status = result.status;
  if (result.kind != Attempt::Kind::response) {
    probe.status = ProbeResult::Status::unreachable;
    probe.message = result.error;
  } else if (result.status == 401 || result.status == 403) {
    probe.status = ProbeResult::Status::auth_failed;
    probe.message = "HTTP " + std::to_string(result.status) + ": the API key was rejected";
  } else if (result.status >= 500) {
    probe.status = ProbeResult::Status::unreachable;
    probe.message = "HTTP " + std::to_string(result.status) + " (server error)";
  } else {
    probe.status = ProbeResult::Status::reachable;
    probe.message = "HTTP " + std::to_string(result.status);
  }
  probe.message = scrub(probe.message, provider->endpoint.api_key);
  return probe;
}

namespace {

// The multipart/form-data body of `upload` and its Content-Type (with the
// boundary), written by Poco's HTMLForm.
std::pair<std::string, std::string>
multipart_body(const core::MultipartFile& upload)
{
  Poco::Net::HTMLForm form(Poco::Net::HTMLForm::ENCODING_MULTIPART);
  for (const auto& [name, value] : upload.fields) {
    form.set(name, value);
  }
  // HTMLForm takes ownership of the part source.
  form.addPart("file",
               new Poco::Net::StringPartSource(upload.bytes, upload.content_type, upload.filename));
  Poco::Net::HTTPRequest head(
      Poco::Net::HTTPRequest::HTTP_POST, "/", Poco::Net::HTTPMessage::HTTP_1_1);
  form.prepareSubmit(head);
  std::ostringstream body;
  form.write(body);
  return {body.str(), head.getContentType()};
}

} // namespace

core::ProviderHttpOutcome
UpstreamClient::send(std::string_view provider_id,
                     const core::ProviderHttpRequest& request,
                     std::stop_token stop)
{
  using core::ChatFailure;
  using core::Errc;
  nlohmann::json details = {{"operation", request.method + " " + request.path}};
  auto ready = usable(provider_id, details);
  if (auto* refusal = std::get_if<ChatFailure>(&ready)) {
    return std::move(*refusal);
  }
  Admitted& admitted = std::get<Admitted>(ready);
  Provider* provider = admitted.provider;
  const UpstreamEndpoint& endpoint = provider->endpoint;
  Outgoing outgoing;
  outgoing.method = request.method;
  outgoing.path = request.path;
  outgoing.headers = request.headers;
  outgoing.body = request.json_body;
  if (request.upload) {
    std::tie(outgoing.body, outgoing.content_type) = multipart_body(*request.upload);
  }
  const auto start = Clock::now();
  int attempts = 0;
  const auto fail =
      [&](Errc code, std::string message, bool provider_fault) -> core::ProviderHttpOutcome {
    ChatFailure failure =
        failed(admitted, code, std::move(message), provider_fault, attempts, details);
    log_->warn("upstream {} {} failed provider={} code={} error=\"{}\"",
               request.method,
               request.path,
               endpoint.id,
               core::protocol_code(code),
               truncate(failure.message, 200));
    return failure;
  };
  while (true) {
    if (!outgoing.within(endpoint, request.deadline)) {
      return fail(Errc::timeout,
                  "the call's deadline passed before " + endpoint.display_name + " answered",
                  false);
    }
    ++attempts;
    const Attempt result = attempt(*provider, outgoing, stop);
    if (result.kind == Attempt::Kind::cancelled || stop.stop_requested()) {
      return fail(Errc::cancelled, "cancelled while calling " + endpoint.display_name, false);
    }
    bool retryable = false;
    std::optional<milliseconds> retry_after;
    Errc code = Errc::provider_error;
    bool provider_fault = true;
    std::string message;
    if (result.kind == Attempt::Kind::response) {
      if (result.status >= 200 && result.status < 300) {
        admitted.pass.success();
        core::ProviderHttpReply reply;
        reply.status = result.status;
        reply.headers = result.headers;
        reply.body = result.body;
        reply.latency = result.latency;
        return reply;
      }
      details["status"] = result.status;
      const std::string kept =
          truncate(scrub(result.body, endpoint.api_key), options_.max_error_body);
      details["body"] = kept;
      const std::string upstream_code = core::openai::error_code(result.body);
      if (!upstream_code.empty()) {
        details["upstream_code"] = upstream_code;
      }
      const auto parsed = nlohmann::json::parse(result.body, nullptr, false);
      if (parsed.is_object() && parsed.contains("error") && parsed["error"].is_object() &&
          parsed["error"].contains("message") && parsed["error"]["message"].is_string()) {
        details["upstream_message"] =
            scrub(parsed["error"]["message"].get<std::string>(), endpoint.api_key);
      }
      if (!result.retry_after.empty()) {
        retry_after = core::parse_retry_after(result.retry_after);
      }
      const auto c =
          core::openai::classify_status(result.status, endpoint.display_name, upstream_code);
      code = c.code;
      retryable = c.retryable;
      provider_fault = c.provider_fault;
      message = c.message + (result.body.empty() ? "" : ": " + kept);
    } else if (result.kind == Attempt::Kind::read_timeout) {
      code = Errc::timeout;
      message = endpoint.display_name + " timed out: " + result.error;
    } else if (result.kind == Attempt::Kind::tls_error) {
      code = Errc::provider_unavailable;
      message = result.error;
    } else {
      retryable = true;
      code = result.kind == Attempt::Kind::truncated ? Errc::provider_error
                                                     : Errc::provider_unavailable;
      message = endpoint.display_name + " is unreachable: " + result.error;
    }
    if (retryable) {
      const auto delay = retry_->next_delay(attempts, retry_after, since(start));
      if (delay && Clock::now() + *delay < request.deadline) {
        if (!options_.sleeper(*delay, stop)) {
          return fail(Errc::cancelled, "cancelled while calling " + endpoint.display_name, false);
        }
        continue;
      }
    }
    return fail(code, message, provider_fault);
  }
}

std::string
UpstreamClient::content_digest(std::string_view bytes) const
{
  Poco::SHA2Engine engine(Poco::SHA2Engine::SHA_256);
  engine.update(bytes.data(), bytes.size());
  return Poco::DigestEngine::digestToHex(engine.digest());
}

} // namespace exai::net
