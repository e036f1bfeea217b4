#pragma once

#include "core/config/config.hpp"
#include "core/providers/chat.hpp"
#include "core/providers/circuit_breaker.hpp"
#include "core/providers/provider_http.hpp"
#include "core/providers/providers.hpp"
#include "core/providers/retry_policy.hpp"
#include "net/upstream/connection_pool.hpp"

#include <spdlog/logger.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <variant>
#include <vector>

namespace exai::net {

// Where and how to reach one provider. `api_key` is a secret: it is only ever
// written into the Authorization header and is scrubbed from every message.
struct UpstreamEndpoint {
  std::string id;           // "kimi" | "glm"
  std::string display_name; // "KIMI" | "GLM"
  std::string base_url;     // http(s)://host[:port][/path], no trailing slash
  std::string api_key;
  std::chrono::milliseconds connect_timeout{10000};
  std::chrono::milliseconds read_timeout{120000};
  std::size_t pool_size = 4; // most idle kept-alive connections: the provider's capacity scope
};

// Waits `delay` unless `stop` is requested first. Returns false when stopped.
using Sleeper = std::function<bool(std::chrono::milliseconds delay, std::stop_token stop)>;

struct UpstreamOptions {
  core::RetryOptions retry;
  core::CircuitBreaker::Options circuit;
  core::CircuitBreaker::Clock clock = core::CircuitBreaker::default_clock();
  std::optional<std::uint64_t> seed; // jitter seed; random when unset
  Sleeper sleeper;                   // backoff waits; default: interruptible real sleep
  std::string ca_file;               // PEM CA bundle replacing the system store (EXAI_CA_FILE)
  std::size_t max_error_body = 512;  // bytes of an upstream error body kept in ChatFailure
  std::size_t max_response_bytes = 64U << 20U;
  // An idle kept-alive connection is closed after this (EXAI_UPSTREAM_IDLE_SECS);
  // 0: one connection per request, "Connection: close".
  std::chrono::milliseconds idle_timeout = core::DaemonConfig{}.upstream_idle;
  std::function<std::chrono::steady_clock::time_point()> pool_clock; // tests; default: steady
  // Chat requests ask for `stream: true` and read server-sent events
  // (EXAI_UPSTREAM_STREAM); an answer that sends nothing for `stall_timeout`
  // is aborted as a timeout and retried (EXAI_UPSTREAM_STALL_SECS).
  bool stream = false; // the daemon turns it on (EXAI_UPSTREAM_STREAM, default true)
  std::chrono::milliseconds stall_timeout = core::DaemonConfig{}.upstream_stall;
};

// Result of a cheap authenticated request (GET {base}/models).
struct ProbeResult {
  enum class Status { reachable, auth_failed, unreachable };
  Status status = Status::unreachable;
  int http_status = 0; // 0 when no HTTP answer
  std::chrono::milliseconds latency{0};
  std::string message; // human-readable; never contains the key
};

// "reachable" | "auth_failed" | "unreachable".
std::string_view to_string(ProbeResult::Status status) noexcept;

// The endpoints of `registry`'s available providers, each pool sized by its
// capacity scope in `config` (EXAI_WS_KIMI_MAX_INFLIGHT, EXAI_WS_GLM_MAX_INFLIGHT).
std::vector<UpstreamEndpoint> endpoints_from(const core::ProviderRegistry& registry,
                                             const core::DaemonConfig& config = {});

// Options from settings and config: EXAI_CA_FILE (CA bundle for HTTPS
// verification), EXAI_UPSTREAM_IDLE_SECS, EXAI_UPSTREAM_STREAM,
// EXAI_UPSTREAM_STALL_SECS.
UpstreamOptions upstream_options_from(const core::Settings& settings,
                                      const core::DaemonConfig& config = {});

// core::ChatBackend over Poco HTTP(S): POST {base}/chat/completions with a
// Bearer key, retries with backoff (connection errors, 429, 5xx; Retry-After
// honoured; GLM body code 1302 = capacity), a circuit breaker per provider,
// and cancellation: a stop request shuts the socket down from the
// requesting thread's stop_callback and wakes backoff waits, so complete()
// returns `cancelled` within milliseconds.
// Connections are kept alive and pooled per provider (net/upstream/
// connection_pool): a request on a reused connection that the server turns
// out to have closed — it failed before any byte of an answer arrived — is
// sent once more on a fresh connection, and that is not a provider failure
// nor an attempt. That is safe for a POST: a server closes a kept-alive
// connection only between requests, so it never read this one (the rule of
// Chromium's and Go's HTTP clients). A connection whose answer was not read
// to its end (failure, cancel, deadline) is closed, never pooled. Fresh HTTPS
// connections resume the provider's last TLS session. One reaper thread
// closes idle connections past their time.
// Streaming (UpstreamOptions::stream): the answer's server-sent events are
// read as they arrive (core/providers/chat_stream), ChatRequest::on_partial
// hears the content so far, and the reply is the one the non-streamed answer
// would give. Silence longer than the stall timeout mid-answer is a
// retryable timeout; an error event mid-stream is judged like an HTTP error
// answer. A provider that answers a streamed request with plain JSON is read
// as such. A stream abandoned midway (error event, malformed event, cancel)
// is not read further and its connection is closed, never pooled.
// TLS: certificate and host name verification always on; system CA store
// unless `ca_file` is set. Thread-safe.
// It also implements core::ProviderHttp (Files API, web search, probes)
// with the same connections, retries, breaker and key scrubbing.
class UpstreamClient final : public core::ChatBackend, public core::ProviderHttp {
public:
  UpstreamClient(std::vector<UpstreamEndpoint> endpoints,
                 UpstreamOptions options = {},
                 std::shared_ptr<spdlog::logger> log = nullptr);
  ~UpstreamClient() override;

  UpstreamClient(const UpstreamClient&) = delete;
  UpstreamClient& operator=(const UpstreamClient&) = delete;

  core::ChatOutcome complete(std::string_view provider_id,
                             const core::ChatRequest& request,
                             std::stop_token stop) override;

  // complete() without blocking, on a thread bound to a transfer loop
  // (TransferLoop::here(), an event loop of exai serve): the same request,
  // judge, retries (a loop timer waits out the backoff), circuit breaker,
  // streaming and key scrubbing; the exchanges run on that loop, which
  // resends a request once on a fresh connection when its kept-alive one
  // turns out closed before any answer byte (as complete() does). False on
  // any other thread.
  bool start(std::string_view provider_id,
             core::ChatRequest request,
             std::stop_token stop,
             core::ChatDone done) override;
  bool starts_here() const override;

  // "closed" | "open" | "half_open"; "closed" for an unknown provider.
  std::string circuit_state(std::string_view provider_id) const override;

  // The blocking path's pool and the transfer loops' connections together.
  core::UpstreamPoolStats pool_stats(std::string_view provider_id) const override;

  core::ProviderHttpOutcome send(std::string_view provider_id,
                                 const core::ProviderHttpRequest& request,
                                 std::stop_token stop) override;
  std::string content_digest(std::string_view bytes) const override;

  // One GET {base}/models with `timeout` for connect and read, no retries,
  // no circuit breaker. An unknown provider reads unreachable.
  ProbeResult
  probe(std::string_view provider_id, std::chrono::milliseconds timeout, std::stop_token stop = {});

private:
  struct Provider;
  struct Attempt;
  struct Verdict;
  struct AsyncChat;

  Verdict judge(const Provider& provider,
                Attempt& result,
                const core::ChatRequest& request,
                nlohmann::json& details) const;

  // What one exchange sends, and how long it may take.
  struct Outgoing {
    std::string method = "POST";
    std::string path;
    std::string body;
    std::string content_type = "application/json";
    std::map<std::string, std::string> headers;
    std::chrono::milliseconds connect_timeout{0};
    std::chrono::milliseconds read_timeout{0};
    // A chat request asked to stream: a 2xx event-stream answer is read as
    // its events (read_events); null: the body is read whole.
    const core::ChatRequest* stream = nullptr;

    // Sets the timeouts: the endpoint's, cut to what is left of `deadline`.
    // False once the deadline has passed.
    bool within(const UpstreamEndpoint& endpoint, std::chrono::steady_clock::time_point deadline);
  };
  // One exchange; a stale reused connection is replaced once (see above).
  Attempt attempt(Provider& provider, const Outgoing& outgoing, const std::stop_token& stop) const;
  Attempt exchange(Provider& provider,
                   const Outgoing& outgoing,
                   const std::stop_token& stop,
                   bool may_reuse) const;
  // Reads a 2xx event-stream body into `result` (see above).
  void read_events(std::istream& in,
                   const core::ChatRequest& request,
                   std::chrono::steady_clock::time_point start,
                   Attempt& result) const;
  std::unique_ptr<UpstreamConnection> open_connection(Provider& provider,
                                                      std::chrono::milliseconds connect_timeout,
                                                      const std::stop_token& stop,
                                                      Attempt& failure) const;
  Provider* find(std::string_view provider_id) const;
  // A request the provider's circuit let through; `pass` reports its outcome
  // to the breaker, neutral if the request ends by an exception.
  struct Admitted {
    Provider* provider;
    core::CircuitBreaker::Pass pass;
  };
  // What `complete` and `send` check before their first attempt: the
  // provider is configured and its circuit lets a request through. `details`
  // gets the provider's id; the refusal carries them.
  std::variant<Admitted, core::ChatFailure> usable(std::string_view provider_id,
                                                   nlohmann::json& details) const;
  // How every request ends in failure: the breaker hears of it (a provider
  // fault, or neutral), `details` get the attempts, the message loses the key.
  core::ChatFailure failed(Admitted& admitted,
                           core::Errc code,
                           std::string message,
                           bool provider_fault,
                           int attempts,
                           nlohmann::json& details) const;
  void reap(const std::stop_token& stop);

  UpstreamOptions options_;
  std::shared_ptr<spdlog::logger> log_;
  std::unique_ptr<core::RetryPolicy> retry_;
  std::map<std::string, std::unique_ptr<Provider>, std::less<>> providers_; // fixed after ctor
  std::jthread reaper_; // last: stops before the pools it sweeps are destroyed
};

} // namespace exai::net
