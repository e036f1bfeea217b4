#include "net/clients/stress_runner.hpp"

#include "net/protocol/op_protocol.hpp"

#include <Poco/Buffer.h>
#include <Poco/Exception.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/WebSocket.h>
#include <fmt/format.h>

#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <condition_variable>
#include <deque>
#include <latch>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace exai::net {

namespace {

using Clock = std::chrono::steady_clock;
using core::stress::CallClass;
using nlohmann::json;
using Poco::Net::WebSocket;
using namespace std::chrono_literals;

constexpr int kTextFrame = WebSocket::FRAME_TEXT;
constexpr int kPongFrame =
    static_cast<int>(WebSocket::FRAME_FLAG_FIN) | static_cast<int>(WebSocket::FRAME_OP_PONG);
constexpr int kIdenticalCallers = 3;
constexpr int kMaxEvents = 256;
constexpr auto kLoopTick = 5ms;
constexpr int kFramesPerWake = 16;
constexpr auto kOverdueCheck = 100ms;
constexpr auto kDisconnectSleep = 200ms;
constexpr auto kIdenticalSleep = 50ms;
constexpr auto kBurstSleep = 100ms;
constexpr int kMaxFrameBytes = 64 * 1024 * 1024; // largest frame we accept from the daemon

Poco::Timespan
span(std::chrono::milliseconds d)
{
  return Poco::Timespan(std::chrono::duration_cast<std::chrono::microseconds>(d).count());
}

double
ms_between(Clock::time_point from, Clock::time_point to)
{
  return std::chrono::duration<double, std::milli>(to - from).count();
}

// Receives the next data frame into `buffer` (answering pings); false when
// the peer closed. Throws Poco exceptions on I/O errors and timeouts.
bool
receive_data(WebSocket& ws, Poco::Buffer<char>& buffer, int& flags)
{
  while (true) {
    buffer.resize(0);
    const int n = ws.receiveFrame(buffer, flags);
    const int opcode = flags & WebSocket::FRAME_OP_BITMASK;
    if (n == 0 && flags == 0) {
      return false;
    }
    if (opcode == WebSocket::FRAME_OP_PING) {
      ws.sendFrame(buffer.begin(), static_cast<int>(buffer.size()), kPongFrame);
      continue;
    }
    if (opcode == WebSocket::FRAME_OP_PONG) {
      continue;
    }
    return opcode != WebSocket::FRAME_OP_CLOSE;
  }
}

// Opens a connection and says hello; throws StressRefused or
// StressUnreachable.
std::unique_ptr<WebSocket>
connect_and_hello(const DaemonAddress& target, std::chrono::milliseconds timeout)
{
  auto ws = open_session(target, timeout, "exai-stress", {}, kMaxFrameBytes).socket;
  ws->setMaxPayloadSize(kMaxFrameBytes);
  return ws;
}

std::string
prompt_for(std::string_view what, std::string_view id, std::chrono::milliseconds sleep)
{
  return fmt::format("[[sleep_ms={}]] exai stress {} {}", sleep.count(), what, id);
}

// Everything the load threads share.
struct Shared {
  explicit Shared(std::ptrdiff_t workers)
      : connected(workers)
  {
  }
  std::latch connected;
  std::mutex mutex;
  std::condition_variable changed;
  bool go = false;     // guarded by mutex
  bool abort = false;  // guarded by mutex
  std::size_t running; // guarded by mutex: workers not finished
  Clock::time_point start;
  std::optional<Clock::time_point> load_deadline; // --duration
  std::atomic<std::int64_t> budget{0};            // scenarios left (when limited)
  bool limited = true;
  std::string run_id;

  // Takes one scenario from the budget; false once the load is over.
  bool take(Clock::time_point now)
  {
    if (load_deadline && now >= *load_deadline) {
      return false;
    }
    return !limited || budget.fetch_sub(1, std::memory_order_relaxed) > 0;
  }
};

} // namespace

// One load thread: its connections, its epoll set, its calls. Everything
// here is touched by this thread only, except the published atomics.
struct StressRunner::Worker {
  struct Conn {
    std::unique_ptr<WebSocket> ws;
    int fd = -1;
    bool open = true;
    bool ephemeral = false;
    CallClass kind = CallClass::normal;      // disconnect or oversize for ephemeral ones
    std::deque<Clock::time_point> malformed; // unanswered malformed frames
    Clock::time_point oversize_sent;
  };

  struct Call {
    CallClass kind = CallClass::normal;
    Conn* conn = nullptr;
    Clock::time_point sent;
    int expected = 1; // call_tool frames sent with this id
    int received = 0; // call_tool_res frames received
    bool cancel_on_ack = false;
    bool disconnect_on_ack = false;
    std::string frame; // kept when it is sent again
    std::string first_outcome;
  };

  Worker(const StressOptions& options, Shared& shared, std::size_t index, std::size_t connections)
      : options_(options)
      , shared_(shared)
      , index_(index)
      , pool_size_(connections)
      , rng_(options.seed * 1000003ULL + index)
  {
  }

  ~Worker()
  {
    if (epoll_ != -1) {
      ::close(epoll_);
    }
  }
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;
  Worker(Worker&&) = delete;
  Worker& operator=(Worker&&) = delete;

  void run() noexcept
  {
    try {
      epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
      connect_pool();
    } catch (const std::exception& e) {
      violations_.add("internal", e.what());
    }
    shared_.connected.count_down();
    bool go = false;
    {
      std::unique_lock lock(shared_.mutex);
      shared_.changed.wait(lock, [this] { return shared_.go || shared_.abort; });
      go = shared_.go && !shared_.abort;
    }
    if (go && epoll_ != -1) {
      try {
        load();
      } catch (const std::exception& e) {
        violations_.add("internal", e.what());
      }
    }
    close_all();
    publish();
    const std::lock_guard lock(shared_.mutex);
    --shared_.running;
    shared_.changed.notify_all();
  }

  // --- connections ---------------------------------------------------------

  void connect_pool()
  {
    for (std::size_t i = 0; i < pool_size_; ++i) {
      try {
        auto conn = std::make_unique<Conn>();
        conn->ws = connect_and_hello(options_.target, options_.io_timeout);
        add(*conn);
        pool_.push_back(std::move(conn));
      } catch (const StressRefused& e) {
        note_refused(e.what());
      } catch (const StressUnreachable& e) {
        ++connect_failures_;
        if (first_connect_error_.empty()) {
          first_connect_error_ = e.what();
        }
      }
    }
    connections_open_.store(pool_.size(), std::memory_order_relaxed);
  }

  void add(Conn& conn)
  {
    conn.fd = conn.ws->impl()->sockfd();
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.ptr = &conn;
    if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, conn.fd, &event) != 0) {
      throw std::runtime_error("epoll_ctl failed");
    }
  }

  // Takes `conn` out of the loop and closes it (abruptly: no close frame).
  void drop(Conn& conn) noexcept
  {
    if (!conn.open) {
      return;
    }
    conn.open = false;
    ::epoll_ctl(epoll_, EPOLL_CTL_DEL, conn.fd, nullptr);
    try {
      conn.ws->close();
    } catch (const Poco::Exception&) {
      // Already gone.
    }
    if (conn.ephemeral) {
      // Freed after the current batch of events (it may still be in it).
      if (auto it = ephemeral_.find(&conn); it != ephemeral_.end()) {
        graveyard_.push_back(std::move(it->second));
        ephemeral_.erase(it);
      }
    }
  }

  Conn* open_ephemeral(CallClass kind)
  {
    auto conn = std::make_unique<Conn>();
    try {
      conn->ws = connect_and_hello(options_.target, options_.io_timeout);
    } catch (const StressRefused& e) {
      note_refused(e.what());
      return nullptr;
    } catch (const StressUnreachable& e) {
      violations_.add("connect_failed",
                      fmt::format("{} connection: {}", core::stress::to_string(kind), e.what()));
      return nullptr;
    }
    conn->ephemeral = true;
    conn->kind = kind;
    add(*conn);
    Conn* raw = conn.get();
    ephemeral_.emplace(raw, std::move(conn));
    return raw;
  }

  Conn* next_pool_conn()
  {
    for (std::size_t tries = 0; tries < pool_.size(); ++tries) {
      Conn& conn = *pool_[next_conn_++ % pool_.size()];
      if (conn.open) {
        return &conn;
      }
    }
    return nullptr;
  }

  // Sends `text`; on failure the connection is lost.
  bool send(Conn& conn, const std::string& text)
  {
    try {
      conn.ws->sendFrame(text.data(), static_cast<int>(text.size()), kTextFrame);
      return true;
    } catch (const Poco::Exception& e) {
      lost(conn, "send failed: " + e.displayText());
      return false;
    }
  }

  // The daemon closed `conn` (or it broke): every call still on it lost its result.
  void lost(Conn& conn, const std::string& reason)
  {
    if (!conn.open) {
      return;
    }
    if (conn.ephemeral && conn.kind == CallClass::oversize) {
      finish_oversize(conn, "reset", reason);
      return;
    }
    violations_.add("connection_lost",
                    fmt::format("the daemon dropped a {} connection: {}",
                                conn.ephemeral ? core::stress::to_string(conn.kind) : "pool",
                                reason));
    for (auto it = calls_.begin(); it != calls_.end();) {
      if (it->second.conn == &conn) {
        violations_.add("missing_result",
                        fmt::format("request_id {} ({}) got no call_tool_res before its "
                                    "connection was closed",
                                    it->first,
                                    core::stress::to_string(it->second.kind)));
        it = calls_.erase(it);
        --active_;
      } else {
        ++it;
      }
    }
    for (std::size_t i = 0; i < conn.malformed.size(); ++i) {
      violations_.add("missing_error_frame", "a malformed frame got no op=error reply");
      --active_;
    }
    conn.malformed.clear();
    drop(conn);
  }

  // --- scenarios -----------------------------------------------------------

  std::string next_id() { return fmt::format("st-{}-{}-{}", shared_.run_id, index_, ++counter_); }

  json tool_arguments(const std::string& tool, const std::string& id) const
  {
    if (tool == "chat" || tool == "challenge") {
      json args = {{"prompt", "exai stress " + id}};
      if (tool == "chat" && !options_.model.empty()) {
        args["model"] = options_.model;
      }
      return args;
    }
    return json::object();
  }

  json chat_arguments(std::string prompt) const
  {
    json args = {{"prompt", std::move(prompt)}};
    if (!options_.model.empty()) {
      args["model"] = options_.model;
    }
    return args;
  }

  Call* send_call(Conn& conn,
                  CallClass kind,
                  const std::string& id,
                  const std::string& tool,
                  const json& arguments)
  {
    Call call;
    call.kind = kind;
    call.conn = &conn;
    call.frame = protocol::call_tool_frame(id, tool, arguments);
    call.sent = Clock::now();
    Call& stored = calls_.emplace(id, std::move(call)).first->second;
    ++active_;
    if (!send(conn, stored.frame)) {
      return nullptr; // lost() already reported it
    }
    return &stored;
  }

  void start_scenario()
  {
    const CallClass kind = options_.mix.pick(rng_());
    Conn* conn = nullptr;
    if (kind != CallClass::disconnect && kind != CallClass::oversize) {
      conn = next_pool_conn();
      if (conn == nullptr) {
        return;
      }
    }
    switch (kind) {
    case CallClass::normal: {
      const std::string id = next_id();
      send_call(*conn, kind, id, options_.tool, tool_arguments(options_.tool, id));
      break;
    }
    case CallClass::timeout: {
      const std::string id = next_id();
      const auto sleep = options_.call_timeout + 1s;
      send_call(*conn, kind, id, "chat", chat_arguments(prompt_for("timeout", id, sleep)));
      break;
    }
    case CallClass::cancel: {
      const std::string id = next_id();
      if (Call* call = send_call(*conn,
                                 kind,
                                 id,
                                 "chat",
                                 chat_arguments(prompt_for("cancel", id, options_.cancel_sleep)))) {
        call->cancel_on_ack = true;
      }
      break;
    }
    case CallClass::disconnect: {
      Conn* ephemeral = open_ephemeral(kind);
      if (ephemeral == nullptr) {
        return;
      }
      const std::string id = next_id();
      if (Call* call = send_call(*ephemeral,
                                 kind,
                                 id,
                                 "chat",
                                 chat_arguments(prompt_for("disconnect", id, kDisconnectSleep)))) {
        call->disconnect_on_ack = true;
      }
      break;
    }
    case CallClass::duplicate: {
      const std::string id = next_id();
      send_call(*conn, kind, id, options_.tool, tool_arguments(options_.tool, id));
      break;
    }
    case CallClass::identical: {
      const json args = chat_arguments(prompt_for("identical", next_id(), kIdenticalSleep));
      for (int i = 0; i < kIdenticalCallers && conn != nullptr; ++i) {
        send_call(*conn, kind, next_id(), "chat", args);
        conn = next_pool_conn();
      }
      break;
    }
    case CallClass::burst: {
      for (std::size_t i = 0; i < options_.burst_size && conn->open; ++i) {
        const std::string id = next_id();
        send_call(*conn, kind, id, "chat", chat_arguments(prompt_for("burst", id, kBurstSleep)));
      }
      break;
    }
    case CallClass::malformed: {
      conn->malformed.push_back(Clock::now());
      ++active_;
      send(*conn, "{\"op\": \"call_tool\", this is not JSON (exai stress)");
      break;
    }
    case CallClass::oversize: {
      Conn* ephemeral = open_ephemeral(kind);
      if (ephemeral == nullptr) {
        return;
      }
      ++active_;
      ephemeral->oversize_sent = Clock::now();
      const std::string big(options_.max_bytes + 1, 'x');
      try {
        ephemeral->ws->sendFrame(big.data(), static_cast<int>(big.size()), kTextFrame);
      } catch (const Poco::Exception&) {
        // The daemon may close before reading it all; the read below tells.
      }
      break;
    }
    }
  }

  void finish_oversize(Conn& conn, const std::string& outcome, const std::string& detail)
  {
    tally_.add(CallClass::oversize, outcome, ms_between(conn.oversize_sent, Clock::now()));
    last_result_ = Clock::now();
    if (outcome != "closed_1009" && outcome != "reset") {
      violations_.add("oversize_not_rejected",
                      fmt::format("a frame of {} bytes (limit {}) was not closed with 1009: {}",
                                  options_.max_bytes + 1,
                                  options_.max_bytes,
                                  detail));
    }
    --active_;
    drop(conn);
  }

  // --- frames --------------------------------------------------------------

  void on_readable(Conn& conn)
  {
    int flags = 0;
    bool data = false;
    try {
      data = receive_data(*conn.ws, buffer_, flags);
    } catch (const Poco::Exception& e) {
      lost(conn, e.displayText());
      return;
    }
    if (!data) {
      const bool close_frame = (flags & WebSocket::FRAME_OP_BITMASK) == WebSocket::FRAME_OP_CLOSE;
      int code = 1006;
      if (close_frame && buffer_.size() >= 2) {
        code =
            (static_cast<unsigned char>(buffer_[0]) << 8) | static_cast<unsigned char>(buffer_[1]);
      }
      if (conn.ephemeral && conn.kind == CallClass::oversize) {
        finish_oversize(conn, fmt::format("closed_{}", code), fmt::format("close code {}", code));
      } else {
        lost(conn, fmt::format("closed with code {}", code));
      }
      return;
    }
    if (conn.ephemeral && conn.kind == CallClass::oversize) {
      finish_oversize(conn, "answered", std::string(buffer_.begin(), buffer_.size()));
      return;
    }
    on_frame(conn, std::string_view(buffer_.begin(), buffer_.size()));
  }

  static std::string snippet(std::string_view text)
  {
    constexpr std::size_t kMax = 160;
    return text.size() <= kMax ? std::string(text) : std::string(text.substr(0, kMax)) + "…";
  }

  void on_frame(Conn& conn, std::string_view text)
  {
    auto parsed = protocol::parse_frame(text);
    if (std::holds_alternative<protocol::FrameProblem>(parsed)) {
      violations_.add("invalid_json", "a frame that is not a JSON object: " + snippet(text));
      return;
    }
    const json& frame = std::get<json>(parsed);
    const auto op_it = frame.find("op");
    if (op_it == frame.end() || !op_it->is_string()) {
      violations_.add("missing_op", "a frame without op: " + snippet(text));
      return;
    }
    const std::string& op = op_it->get_ref<const std::string&>();
    const auto id_it = frame.find("request_id");
    const bool has_id = id_it != frame.end() && id_it->is_string();
    if (op == "error") {
      on_error_frame(conn, frame, has_id ? id_it->get<std::string>() : std::string(), text);
      return;
    }
    if (op != "progress" && op != "call_tool_ack" && op != "call_tool_res") {
      violations_.add("unexpected_op", fmt::format("unexpected op {}: {}", op, snippet(text)));
      return;
    }
    if (!has_id) {
      violations_.add("missing_request_id",
                      fmt::format("{} without request_id: {}", op, snippet(text)));
      return;
    }
    const std::string& id = id_it->get_ref<const std::string&>();
    const auto it = calls_.find(id);
    if (it == calls_.end() || it->second.conn != &conn) {
      violations_.add(
          "unknown_request_id",
          fmt::format("{} for an unknown or finished request_id {}: {}", op, id, snippet(text)));
      return;
    }
    Call& call = it->second;
    if (op == "call_tool_ack") {
      on_ack(conn, id, call);
    } else if (op == "call_tool_res") {
      on_result(conn, it, frame, text);
    }
  }

  void on_error_frame(Conn& conn, const json& frame, const std::string& id, std::string_view text)
  {
    const auto error = frame.find("error");
    const std::string code = error != frame.end() && error->is_object()
                                 ? error->value("code", std::string("error"))
                                 : std::string("error");
    if (!id.empty()) {
      // The answer to a cancel_tool that arrived after its call had finished.
      if (cancelled_.erase(id) > 0) {
        return;
      }
      violations_.add("unexpected_error_frame",
                      fmt::format("op=error for request_id {}: {}", id, snippet(text)));
      return;
    }
    if (conn.malformed.empty()) {
      violations_.add("unexpected_error_frame", "op=error with no cause: " + snippet(text));
      return;
    }
    const auto sent = conn.malformed.front();
    conn.malformed.pop_front();
    --active_;
    record(CallClass::malformed, code, ms_between(sent, Clock::now()));
  }

  void on_ack(Conn& conn, const std::string& id, Call& call)
  {
    if (call.cancel_on_ack) {
      call.cancel_on_ack = false;
      cancelled_.insert(id);
      send(conn, protocol::cancel_tool_frame(id));
    } else if (call.disconnect_on_ack && conn.ephemeral) {
      // Walk away mid-call, then ask for the same request_id on another
      // connection: the daemon delivers the result there (running or replayed).
      call.disconnect_on_ack = false;
      Conn* other = next_pool_conn();
      drop(conn);
      if (other == nullptr) {
        calls_.erase(id);
        --active_;
        return;
      }
      call.conn = other;
      send(*other, call.frame);
    }
  }

  void on_result(Conn& conn,
                 std::unordered_map<std::string, Call>::iterator it,
                 const json& frame,
                 std::string_view text)
  {
    Call& call = it->second;
    const auto now = Clock::now();
    ++call.received;
    std::string outcome;
    const auto error = frame.find("error");
    if (error != frame.end()) {
      if (error->is_object() && error->contains("code") && error->at("code").is_string()) {
        outcome = error->at("code").get<std::string>();
      } else {
        outcome = "invalid";
        violations_.add("malformed_result", "call_tool_res error without code: " + snippet(text));
      }
    } else if (const auto outputs = frame.find("outputs");
               outputs != frame.end() && outputs->is_array()) {
      outcome = "ok";
    } else {
      outcome = "invalid";
      violations_.add("malformed_result",
                      "call_tool_res with neither outputs nor error: " + snippet(text));
    }
    record(call.kind, outcome, ms_between(call.sent, now));

    if (call.kind == CallClass::duplicate && call.received == 1) {
      // Send the finished request_id again: the stored result must come back.
      call.first_outcome = outcome;
      call.expected = 2;
      call.sent = now;
      send(conn, call.frame);
      return;
    }
    if (call.kind == CallClass::duplicate && outcome != call.first_outcome) {
      violations_.add(
          "replay_mismatch",
          fmt::format(
              "request_id {} resent: first {} then {}", it->first, call.first_outcome, outcome));
    }
    if (call.received >= call.expected) {
      calls_.erase(it);
      --active_;
    }
  }

  void record(CallClass kind, const std::string& outcome, double latency_ms)
  {
    tally_.add(kind, outcome, latency_ms);
    last_result_ = Clock::now();
    if (outcome != "ok") {
      ++errors_;
    }
  }

  // --- the loop ------------------------------------------------------------

  void load()
  {
    const std::size_t limit = std::max<std::size_t>(1, concurrency_);
    std::array<epoll_event, kMaxEvents> events{};
    bool starting = true;
    std::optional<Clock::time_point> drain_deadline;
    auto next_overdue_check = Clock::now() + kOverdueCheck;
    last_result_ = shared_.start;
    while (true) {
      auto now = Clock::now();
      while (starting && active_ < limit) {
        if (!shared_.take(now) || next_pool_conn() == nullptr) {
          starting = false;
          break;
        }
        start_scenario();
      }
      if (!starting && !drain_deadline) {
        drain_deadline = now + drain_wait();
      }
      if (!starting && active_ == 0) {
        break;
      }
      const int n = ::epoll_wait(epoll_,
                                 events.data(),
                                 kMaxEvents,
                                 static_cast<int>(std::chrono::milliseconds(kLoopTick).count()));
      for (int i = 0; i < n; ++i) {
        auto* conn = static_cast<Conn*>(events.at(static_cast<std::size_t>(i)).data.ptr);
        // Frames that arrived together (progress, ack, result) are read
        // together: one wait per batch, not per frame. Bounded for fairness.
        for (int frames = 0; conn->open && frames < kFramesPerWake; ++frames) {
          on_readable(*conn);
          if (!conn->open || conn->ws->available() <= 0) {
            break;
          }
        }
      }
      graveyard_.clear();
      now = Clock::now();
      check_oversize(now);
      if (now >= next_overdue_check) {
        next_overdue_check = now + kOverdueCheck;
        check_overdue(now);
      }
      publish();
      if (drain_deadline && now >= *drain_deadline) {
        report_outstanding();
        break;
      }
    }
    publish();
  }

  std::chrono::milliseconds drain_wait() const
  {
    auto wait = options_.drain_timeout;
    if (options_.mix.weight(CallClass::timeout) > 0) {
      wait = std::max<std::chrono::milliseconds>(wait, options_.call_timeout + 5s);
    }
    return wait;
  }

  void check_oversize(Clock::time_point now)
  {
    std::vector<Conn*> overdue;
    for (const auto& [raw, conn] : ephemeral_) {
      if (conn->open && conn->kind == CallClass::oversize &&
          now - conn->oversize_sent > options_.io_timeout) {
        overdue.push_back(raw);
      }
    }
    for (Conn* conn : overdue) {
      finish_oversize(*conn, "not_closed", "the connection stayed open");
    }
    graveyard_.clear();
  }

  // Calls the daemon should have answered long ago (every accepted call ends
  // within its acquire and call timeouts) are missing: report them and free
  // their slots, so that one lost result cannot stall the load.
  void check_overdue(Clock::time_point now)
  {
    const auto limit = options_.acquire_timeout + options_.call_timeout + options_.drain_timeout;
    for (auto it = calls_.begin(); it != calls_.end();) {
      if (now - it->second.sent > limit) {
        violations_.add("missing_result",
                        fmt::format("request_id {} ({}) got no call_tool_res within {:.1f} s",
                                    it->first,
                                    core::stress::to_string(it->second.kind),
                                    std::chrono::duration<double>(limit).count()));
        it = calls_.erase(it);
        --active_;
      } else {
        ++it;
      }
    }
  }

  void report_outstanding()
  {
    for (const auto& [id, call] : calls_) {
      violations_.add("missing_result",
                      fmt::format("request_id {} ({}) got {} of {} call_tool_res within the drain "
                                  "timeout",
                                  id,
                                  core::stress::to_string(call.kind),
                                  call.received,
                                  call.expected));
    }
    calls_.clear();
    for (const auto& conn : pool_) {
      for (std::size_t i = 0; i < conn->malformed.size(); ++i) {
        violations_.add("missing_error_frame", "a malformed frame got no op=error reply");
      }
      conn->malformed.clear();
    }
    active_ = 0;
  }

  void close_all() noexcept
  {
    for (const auto& conn : pool_) {
      if (conn->open) {
        try {
          conn->ws->shutdown(); // close frame 1000
        } catch (const Poco::Exception&) {
          // Closed anyway below.
        }
        drop(*conn);
      }
    }
    std::vector<Conn*> rest;
    for (const auto& [raw, conn] : ephemeral_) {
      rest.push_back(raw);
    }
    for (Conn* conn : rest) {
      drop(*conn);
    }
    graveyard_.clear();
    connections_open_.store(0, std::memory_order_relaxed);
  }

  void publish() noexcept
  {
    calls_done_.store(tally_.calls(), std::memory_order_relaxed);
    errors_done_.store(errors_, std::memory_order_relaxed);
    violations_seen_.store(violations_.total(), std::memory_order_relaxed);
    inflight_.store(active_, std::memory_order_relaxed);
  }

  const StressOptions& options_;
  Shared& shared_;
  const std::size_t index_;
  const std::size_t pool_size_;
  std::size_t concurrency_ = 1;
  std::mt19937_64 rng_;
  int epoll_ = -1;
  std::vector<std::unique_ptr<Conn>> pool_;
  std::unordered_map<Conn*, std::unique_ptr<Conn>> ephemeral_;
  std::vector<std::unique_ptr<Conn>> graveyard_;
  std::unordered_map<std::string, Call> calls_;
  std::unordered_set<std::string> cancelled_;
  std::size_t next_conn_ = 0;
  std::uint64_t counter_ = 0;
  std::size_t active_ = 0; // calls, malformed frames and oversize frames awaiting an answer
  std::size_t errors_ = 0;
  Poco::Buffer<char> buffer_{0}; // one receive buffer for all this thread's connections

  void note_refused(const std::string& why)
  {
    ++refused_;
    if (refused_reason_.empty()) {
      refused_reason_ = why;
    }
  }

public:
  core::stress::Tally tally_;
  core::stress::ViolationLog violations_;
  std::size_t connect_failures_ = 0;
  std::string first_connect_error_;
  std::size_t refused_ = 0;
  std::string refused_reason_;
  Clock::time_point last_result_;
  std::atomic<std::size_t> calls_done_{0};
  std::atomic<std::size_t> errors_done_{0};
  std::atomic<std::size_t> violations_seen_{0};
  std::atomic<std::size_t> inflight_{0};
  std::atomic<std::size_t> connections_open_{0};

  void set_concurrency(std::size_t n) { concurrency_ = n; }
};

StressRunner::StressRunner(StressOptions options)
    : options_(std::move(options))
{
}

StressRunner::~StressRunner() = default;

LoadResult
StressRunner::run(const std::function<void(const StressProgress&)>& tick)
{
  const std::size_t hardware = std::max(1U, std::thread::hardware_concurrency());
  std::size_t threads =
      options_.threads != 0 ? options_.threads : std::min<std::size_t>(4, hardware);
  threads = std::max<std::size_t>(1, std::min(threads, options_.connections));
  const std::size_t concurrency =
      options_.concurrency != 0 ? options_.concurrency : options_.connections;

  Shared shared(static_cast<std::ptrdiff_t>(threads));
  shared.running = threads;
  shared.limited = options_.calls != 0 || !options_.duration;
  shared.budget = static_cast<std::int64_t>(options_.calls);
  {
    std::random_device random;
    shared.run_id = fmt::format("{:08x}", random());
  }

  std::vector<std::unique_ptr<Worker>> workers;
  for (std::size_t w = 0; w < threads; ++w) {
    const std::size_t share = options_.connections / threads + (w < options_.connections % threads);
    workers.push_back(std::make_unique<Worker>(options_, shared, w, share));
    workers.back()->set_concurrency(concurrency / threads + (w < concurrency % threads));
  }
  std::vector<std::thread> threads_running;
  threads_running.reserve(threads);
  for (auto& worker : workers) {
    threads_running.emplace_back([&worker] { worker->run(); });
  }

  const auto progress = [&workers] {
    StressProgress p;
    for (const auto& w : workers) {
      p.calls += w->calls_done_.load(std::memory_order_relaxed);
      p.errors += w->errors_done_.load(std::memory_order_relaxed);
      p.violations += w->violations_seen_.load(std::memory_order_relaxed);
      p.inflight += w->inflight_.load(std::memory_order_relaxed);
      p.connections += w->connections_open_.load(std::memory_order_relaxed);
    }
    return p;
  };
  const auto join_all = [&threads_running] {
    for (auto& t : threads_running) {
      t.join();
    }
  };

  shared.connected.wait();
  std::size_t opened = 0;
  std::size_t failed = 0;
  std::string first_error;
  for (const auto& w : workers) {
    opened += w->connections_open_.load();
    failed += w->connect_failures_;
    if (first_error.empty()) {
      first_error = w->first_connect_error_;
    }
  }
  if (opened == 0) {
    {
      const std::lock_guard lock(shared.mutex);
      shared.abort = true;
    }
    shared.changed.notify_all();
    join_all();
    throw StressUnreachable(first_error.empty() ? "no connection could be opened" : first_error);
  }

  // An explicit idle period requested by the caller (e.g. to measure the
  // daemon's memory per idle connection), not a wait for a condition.
  const auto hold_until = Clock::now() + options_.hold;
  while (Clock::now() < hold_until) {
    tick(progress());
    std::this_thread::sleep_for(std::min<Clock::duration>(1s, hold_until - Clock::now()));
  }

  shared.start = Clock::now();
  if (options_.duration) {
    shared.load_deadline = shared.start + *options_.duration;
  }
  {
    const std::lock_guard lock(shared.mutex);
    shared.go = true;
  }
  shared.changed.notify_all();
  {
    std::unique_lock lock(shared.mutex);
    while (!shared.changed.wait_for(lock, 1s, [&shared] { return shared.running == 0; })) {
      lock.unlock();
      tick(progress());
      lock.lock();
    }
  }
  join_all();

  LoadResult result;
  result.connections = opened;
  result.concurrency = concurrency;
  auto last = shared.start;
  for (const auto& w : workers) {
    result.tally.merge(w->tally_);
    result.violations.merge(w->violations_);
    result.refused += w->refused_;
    if (result.refused_reason.empty()) {
      result.refused_reason = w->refused_reason_;
    }
    last = std::max(last, w->last_result_);
  }
  if (failed > 0) {
    result.violations.add("connect_failed",
                          fmt::format("{} of {} connections could not be opened: {}",
                                      failed,
                                      options_.connections,
                                      first_error));
  }
  result.elapsed_s = std::chrono::duration<double>(last - shared.start).count();
  return result;
}

struct ControlConnection::Impl {
  std::unique_ptr<WebSocket> ws;
  Poco::Buffer<char> buffer{0};
};

ControlConnection::ControlConnection(const DaemonAddress& target, std::chrono::milliseconds timeout)
    : impl_(std::make_unique<Impl>())
{
  impl_->ws = connect_and_hello(target, timeout);
}

ControlConnection::~ControlConnection()
{
  try {
    impl_->ws->shutdown();
    impl_->ws->close();
  } catch (const Poco::Exception&) {
    // Gone already.
  }
}

std::optional<json>
ControlConnection::health(std::chrono::milliseconds timeout, std::string& error)
{
  const auto deadline = Clock::now() + timeout;
  try {
    const std::string request = protocol::health_frame();
    impl_->ws->sendFrame(request.data(), static_cast<int>(request.size()), kTextFrame);
    while (Clock::now() < deadline) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      impl_->ws->setReceiveTimeout(span(std::max(left, std::chrono::milliseconds(1))));
      int flags = 0;
      if (!receive_data(*impl_->ws, impl_->buffer, flags)) {
        error = "the daemon closed the control connection";
        return std::nullopt;
      }
      auto parsed = protocol::parse_frame({impl_->buffer.begin(), impl_->buffer.size()});
      const auto* frame_ptr = std::get_if<json>(&parsed);
      if (frame_ptr != nullptr && frame_ptr->value("op", "") == "health_res") {
        const json& frame = *frame_ptr;
        const auto health = frame.find("health");
        if (frame.value("ok", false) != true || health == frame.end()) {
          error = "health_res not ok: " + frame.dump();
          return std::nullopt;
        }
        return *health;
      }
    }
    error = "no health_res in time";
  } catch (const Poco::TimeoutException&) {
    error = "no health_res in time";
  } catch (const Poco::Exception& e) {
    error = e.displayText();
  }
  return std::nullopt;
}

} // namespace exai::net
