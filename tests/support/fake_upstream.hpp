#pragma once

// A loopback, OpenAI-compatible upstream for tests, benchmarks and stress
// runs (also as the standalone `exai_fake_upstream` executable).
//
// Endpoints (any base path, e.g. http://127.0.0.1:PORT/v1):
//   POST <base>/chat/completions  -> a chat completion (or the failure asked for)
//   GET  <base>/models            -> a model list; the cheap authenticated probe
//   POST <base>/files             -> Files API upload (multipart: file, purpose) -> {id, ...};
//                                    a file whose content has [[status=N]] is refused
//                                    with HTTP N and an OpenAI-style error body
//   GET  <base>/files             -> {"object":"list","data":[...]} of the uploaded files
//   GET  <base>/files/{id}/content -> {"content": <the file's text>, "filename", ...}
//                                    (Moonshot's extraction answer); 404 when unknown
//   DELETE <base>/files/{id}      -> {"id","object":"file","deleted":true}; 404 when unknown
//   POST <base>/web_search        -> GLM's web search answer: search_result has `count`
//                                    results echoing search_query
// With `expected_key` set, all answer 401 unless `Authorization: Bearer <key>`.
// Chat answers carry "Msh-Request-Id: fake-req-N", echo an Idempotency-Key
// header, and answer a Msh-Context-Cache-Token with Msh-Context-Cache-Token-Saved.
//
// A successful reply echoes the request's model and has
//   choices[0].message.content = "echo: " + <last user message, verbatim>,
//   finish_reason "stop" and a usage object (prompt/completion/total tokens).
// A user message given as parts is read as its text parts joined; its
// image_url parts add " [images: N]" to the reply. Provider web search:
//   - Kimi (`tools` has builtin_function "$web_search"): until the request's
//     last message is a tool message, the reply asks for $web_search
//     (finish_reason "tool_calls"); after it, the content ends " [searched]".
//   - GLM (`tools` has a "web_search" tool): the reply carries a top-level
//     `web_search` array of results.
//
// Behaviour comes from, in increasing precedence: the default behaviour
// (Options::behavior / set_behavior()), a one-shot behaviour queued with
// enqueue() (consumed by the next chat request), and directives in the LAST
// USER MESSAGE of the request. Directives (any number, anywhere in the text):
//   [[sleep_ms=N]]     wait N ms before answering (interrupted by stop())
//   [[status=N]]       answer HTTP N with an OpenAI-style error body
//                      {"error":{"message":...,"type":"fake_error","code":"N"}}
//   [[retry_after=S]]  add "Retry-After: S" (seconds) to an error answer
//   [[glm_1302]]       answer 429 with GLM's capacity body
//                      {"error":{"code":"1302","message":"..."}}
//   [[hang]]           never answer until release_hangs() (then a normal
//                      reply) or stop() (then the connection just closes)
//   [[malformed]]      200 with a body that is not valid JSON
//   [[truncate]]       200 whose body stops halfway (Content-Length says more),
//                      then the connection is closed
//   [[reset]]          drop the connection without any answer
//   [[pad=N]]          N filler bytes before the echoed header (places a key
//                      where a length cut would split it)
//   [[echo_auth]]      put the received Authorization header into the error
//                      message of a failure (to test that clients scrub it)
//   [[reply=TEXT]]     the reply's content is exactly TEXT (TEXT may not hold "]]")
//   [[search_forever]] with Kimi's $web_search offered, every reply asks for it
//   [[call_tool=NAME]] with tools offered and the last message not a tool result,
//                      the reply asks for function NAME ({"query":"fake"})
//   [[minimal]]        a successful reply with only choices[0].message.content
//                      (no id, model, finish_reason or usage)
//   [[stall_ms=N]]     200 whose body stops halfway, then nothing for N ms
//                      (interrupted by stop()), then the connection is dropped
//   [[close]]          a normal reply that promises keep-alive, after which the
//                      server closes the connection (FIN): a pooled client finds
//                      it dead when it next wants it
//   [[cached=N]]       the usage reports N cached prompt tokens (Kimi's
//                      `cached_tokens`, GLM's prompt_tokens_details)
//   [[big_event=N]]    N filler bytes appended to the reply's content; a
//                      streamed reply sends the content in one event
// A request with "stream": true is answered with server-sent events (see
// fake_sse.hpp: chunked, text/event-stream), and these apply to it:
//   [[chunks=N]]       the content in N pieces (default 4)
//   [[chunk_ms=N]]     N ms between events (interrupted by stop())
//   [[sse_error]]      an error event after the first content piece, then the end
//   [[no_done]]        no final "data: [DONE]" (the finish chunk still comes)
//   [[malformed]]      a malformed event after the first content piece
//   [[truncate]]       half the events, then the connection is dropped
//   [[stall_ms=N]]     half the events, nothing for N ms, then the connection
//                      is dropped
//   [[fail_times=N]]   only the first N requests carrying this exact prompt
//                      text fail (with [[status=...]], [[glm_1302]], [[reset]], [[stall_ms=N]],
//                      [[truncate]] or [[malformed]]; plain 503 when none is
//                      given); later ones succeed. Counted per server.
// Example prompt: "hello [[fail_times=2]][[status=429]][[retry_after=0]]".
//
// Connections are kept alive (HTTP/1.1) unless a directive drops them; an idle
// one is closed after Options::idle_close. Options::keep_alive_hint adds
// "Keep-Alive: timeout=N" to every answer; Options::connect_delay is added to
// the first request of each new connection (a far-away server's handshake).
// Each recorded request names the client's address:port, so tests can see
// which requests shared a connection.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace exai::test {

// What the fake does with one chat request.
struct FakeBehavior {
  std::chrono::milliseconds latency{0};     // [[sleep_ms=N]]
  int status = 200;                         // [[status=N]]
  std::optional<int> retry_after;           // [[retry_after=S]]
  bool glm_1302 = false;                    // [[glm_1302]]
  bool hang = false;                        // [[hang]]
  bool malformed = false;                   // [[malformed]]
  bool truncate = false;                    // [[truncate]]
  bool reset = false;                       // [[reset]]
  bool minimal = false;                     // [[minimal]]
  bool echo_auth = false;                   // [[echo_auth]]
  bool close = false;                       // [[close]]
  std::chrono::milliseconds stall{0};       // [[stall_ms=N]]
  int pad = 0;                              // [[pad=N]]
  int fail_times = -1;                      // [[fail_times=N]]; -1 = always apply the failure
  int cached = 0;                           // [[cached=N]]
  int big_event = 0;                        // [[big_event=N]]
  int chunks = 4;                           // [[chunks=N]] (streamed)
  std::chrono::milliseconds chunk_delay{0}; // [[chunk_ms=N]] (streamed)
  bool sse_error = false;                   // [[sse_error]] (streamed)
  bool no_done = false;                     // [[no_done]] (streamed)
  std::optional<std::string> reply;         // [[reply=TEXT]]: the content, verbatim
  bool search_forever = false;              // [[search_forever]]
  std::string call_tool;                    // [[call_tool=NAME]]
};

// `base` with every directive found in `prompt` applied on top.
FakeBehavior parse_directives(std::string_view prompt, FakeBehavior base = {});

// One request as the fake received it.
struct RecordedRequest {
  std::string method;
  std::string path;
  std::map<std::string, std::string> headers; // as sent (names as spelled by the client)
  std::string body;
  std::string peer;      // the client's "address:port": one per connection
  bool streamed = false; // the body asked for "stream": true
};

class FakeUpstream {
public:
  struct Options {
    std::string expected_key; // empty: no authentication check
    std::string cert_file;    // PEM; with key_file, serve HTTPS
    std::string key_file;
    FakeBehavior behavior;
    int max_threads = 64;                        // concurrent connections served
    std::uint16_t port = 0;                      // 0: an ephemeral port
    std::chrono::milliseconds idle_close{30000}; // an idle connection is closed after this
    int keep_alive_hint = 0;                     // seconds in "Keep-Alive: timeout=N"; 0 = none
    std::chrono::milliseconds connect_delay{0};  // added once per new connection
    // Keep every request for requests(). The standalone binary turns it off:
    // nothing reads its requests, and keeping them grew its memory (and its
    // CPU, through page faults and copies) with every call of a benchmark.
    bool record = true;
  };

  // Starts listening on 127.0.0.1 (at an ephemeral port unless
  // Options::port is set); ready on return.
  FakeUpstream();
  explicit FakeUpstream(Options options);
  // Stops (see stop()).
  ~FakeUpstream();

  FakeUpstream(const FakeUpstream&) = delete;
  FakeUpstream& operator=(const FakeUpstream&) = delete;

  std::uint16_t port() const noexcept { return port_; }
  // "http://127.0.0.1:PORT/v1" (https:// when serving TLS).
  std::string base_url() const;

  // The behaviour of requests that bring no directives (thread-safe).
  void set_behavior(const FakeBehavior& behavior);
  // The next chat request (only) uses `behavior` instead of the default.
  void enqueue(const FakeBehavior& behavior);
  // Lets every hung request that arrived before this call answer normally;
  // later [[hang]]s hang again.
  void release_hangs();

  // Every request so far, in arrival order (none unless Options::record).
  std::vector<RecordedRequest> requests() const;
  std::size_t request_count() const;
  int current_concurrency() const;
  // Connections accepted so far / open now.
  int accepted_connections() const;
  int open_connections() const;
  // Waits until at most `count` connections are open; false on timeout.
  bool wait_for_open_connections_at_most(int count, std::chrono::milliseconds timeout) const;
  int peak_concurrency() const;
  // Forgets recorded requests, the peak, fail_times counters and queued behaviours.
  void reset_stats();

  // Waits until at least `count` requests have arrived / `level` are in
  // flight at once; false on timeout.
  bool wait_for_requests(std::size_t count, std::chrono::milliseconds timeout) const;
  bool wait_for_concurrency(int level, std::chrono::milliseconds timeout) const;

  // Wakes hung and sleeping requests (their connections close unanswered),
  // stops the server and joins its threads. Idempotent.
  void stop();

  struct Impl; // the Poco server and its handlers (fake_upstream.cpp)

private:
  std::unique_ptr<Impl> impl_;
  std::uint16_t port_ = 0;
};

} // namespace exai::test
