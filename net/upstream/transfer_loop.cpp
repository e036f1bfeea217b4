#include "net/upstream/transfer_loop.hpp"

#include "core/log.hpp"
#include "net/upstream/connection_pool.hpp"

#include <Poco/String.h>

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <curl/curl.h>
#include <mutex>
#include <openssl/ssl.h>
#include <system_error>
#include <utility>

namespace exai::net {

namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

CURLM*
as_multi(void* multi) noexcept
{
  return static_cast<CURLM*>(multi);
}

[[noreturn]] void
throw_errno(const char* what)
{
  throw std::system_error(errno, std::generic_category(), what);
}

// libcurl's "seconds idle before a connection is not reused" (it reuses one
// idle up to maxage + 0.999 s): under `max_idle`, and a second under the
// server's hint so a request never races the server closing it.
long
max_age(seconds max_idle, std::optional<seconds> hint) noexcept
{
  long age = static_cast<long>(max_idle.count()) - 1;
  if (hint) {
    age = std::min(age, static_cast<long>(hint->count()) - 2);
  }
  return std::max(0L, age);
}

TransferError
classify(CURLcode code, bool connected) noexcept
{
  switch (code) {
  case CURLE_OK:
    return TransferError::none;
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_RESOLVE_PROXY:
  case CURLE_COULDNT_CONNECT:
    return TransferError::connect;
  case CURLE_OPERATION_TIMEDOUT:
    return connected ? TransferError::timeout : TransferError::connect;
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_CIPHER:
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_SSL_ISSUER_ERROR:
  case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
  case CURLE_SSL_CRL_BADFILE:
    return TransferError::tls;
  default:
    return TransferError::broken;
  }
}

void
global_init()
{
  static std::once_flag once;
  std::call_once(once, [] {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
      throw std::runtime_error("libcurl could not initialise");
    }
  });
}

// Reset easy handles kept for the next exchanges: enough for a burst, not
// one per cached connection (each holds its buffers).
constexpr std::size_t kMaxSpareHandles = 64;

// The loop whose poll() runs on this thread now.
thread_local const TransferLoop* t_polling = nullptr;
// The loop bound to this thread (TransferLoop::Binding).
thread_local TransferLoop* t_bound = nullptr;

// Every loop alive, for all_stats().
std::mutex g_loops_mutex;
std::set<const TransferLoop*> g_loops; // guarded by g_loops_mutex

struct PollingScope {
  explicit PollingScope(const TransferLoop* loop) noexcept
      : previous(std::exchange(t_polling, loop))
  {
  }
  ~PollingScope() { t_polling = previous; }
  PollingScope(const PollingScope&) = delete;
  PollingScope& operator=(const PollingScope&) = delete;
  const TransferLoop* previous;
};

} // namespace

std::string_view
TransferResult::header(std::string_view name) const noexcept
{
  for (const auto& [key, value] : headers) {
    if (Poco::icompare(key, std::string(name)) == 0) {
      return value;
    }
  }
  return {};
}

// The accounting view of one provider's connections. Sockets are counted by
// libcurl's open/close callbacks, which outlive any one exchange, so a pool
// lives as long as the loop.
struct TransferLoop::Pool {
  std::atomic<std::size_t> open{0};   // sockets open, busy or idle
  std::atomic<std::size_t> active{0}; // exchanges running
  std::atomic<std::uint64_t> reused{0};
  std::atomic<std::uint64_t> opened{0};
  std::atomic<std::uint64_t> stale{0};
  std::optional<seconds> hint; // the driving thread only: the server's last Keep-Alive hint
};

// A timer of at(): fires on the driving thread unless stopped first.
struct TransferLoop::Wait {
  Id id = 0;
  TransferClock::time_point when;
  std::stop_token stop;
  std::function<void(bool)> fired;
  std::optional<std::stop_callback<std::function<void()>>> on_stop;
};

struct TransferLoop::Transfer {
  TransferLoop* loop = nullptr;
  Id id = 0;
  Pool* pool = nullptr;
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  TransferRequest request;
  TransferHandlers handlers;
  TransferResult result;
  std::stop_token stop;
  std::optional<std::stop_callback<std::function<void()>>> on_stop;
  TransferClock::time_point last_byte;       // the start, then the latest byte of the answer
  TransferClock::time_point timer_due;       // its entry in timers_
  TransferError abort = TransferError::none; // why a callback stopped libcurl
  std::string abort_message;
  int connects = 0; // sockets opened for it
  int attempts = 0; // requests begun on a connection; 2 after a stale retry
  bool head_done = false;
  std::array<char, CURL_ERROR_SIZE> error{};

  // The longest silence allowed now: the stall limit once the answer began.
  std::chrono::milliseconds silence() const
  {
    return result.answered && request.stall_timeout.count() > 0 ? request.stall_timeout
                                                                : request.read_timeout;
  }

  TransferClock::time_point due() const
  {
    return std::min(request.deadline, last_byte + silence());
  }

  void read_head()
  {
    if (head_done) {
      return;
    }
    head_done = true;
    long status = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    result.status = static_cast<int>(status);
    result.headers.clear();
    curl_header* previous = nullptr;
    while (curl_header* h = curl_easy_nextheader(easy, CURLH_HEADER, -1, previous)) {
      result.headers.emplace_back(h->name, h->value);
      previous = h;
    }
  }
};

// libcurl's C callbacks. None lets an exception out (they run inside
// libcurl) and none ends an exchange itself: they tell libcurl to stop and
// collect_done() hears of it.
struct TransferCallbacks {
  static std::size_t on_write(char* data, std::size_t size, std::size_t count, void* user)
  {
    auto& t = *static_cast<TransferLoop::Transfer*>(user);
    const std::size_t length = size * count;
    answer_arrived(t);
    t.read_head();
    const std::string_view piece(data, length);
    if (t.handlers.on_body) {
      try {
        if (!t.handlers.on_body(t.result, piece)) {
          t.abort = TransferError::aborted;
          t.abort_message = "the answer was refused by its reader";
          return 0;
        }
      } catch (const std::exception& e) {
        t.abort = TransferError::aborted;
        t.abort_message = e.what();
        return 0;
      } catch (...) {
        t.abort = TransferError::aborted;
        t.abort_message = "the answer's reader failed";
        return 0;
      }
      return length;
    }
    if (t.result.body.size() + length > t.request.max_body) {
      t.abort = TransferError::too_large;
      t.abort_message =
          "the answer is larger than " + std::to_string(t.request.max_body) + " bytes";
      return 0;
    }
    t.result.body.append(piece);
    return length;
  }

  // A byte of the answer: the silence limit restarts, and once the answer
  // began the stall limit replaces the read timeout, which may move the
  // exchange's timer earlier.
  static void answer_arrived(TransferLoop::Transfer& t)
  {
    t.last_byte = TransferClock::now();
    if (!t.result.answered) {
      t.result.answered = true;
      t.loop->schedule(t);
    }
  }

  static std::size_t on_header(char* /*data*/, std::size_t size, std::size_t count, void* user)
  {
    auto& t = *static_cast<TransferLoop::Transfer*>(user);
    answer_arrived(t);
    t.head_done = false; // a 1xx head is followed by the final one
    return size * count;
  }

  static curl_socket_t on_open(void* user, curlsocktype /*purpose*/, curl_sockaddr* address)
  {
    auto& t = *static_cast<TransferLoop::Transfer*>(user);
    const int fd = ::socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
    if (fd < 0) {
      return CURL_SOCKET_BAD;
    }
    ++t.connects;
    t.pool->open.fetch_add(1, std::memory_order_relaxed);
    t.pool->opened.fetch_add(1, std::memory_order_relaxed);
    return fd;
  }

  // Set per connection when it is made (libcurl copies it), so the pool, not
  // the exchange that opened it, is what it points at.
  static int on_close(void* user, curl_socket_t fd)
  {
    static_cast<TransferLoop::Pool*>(user)->open.fetch_sub(1, std::memory_order_relaxed);
    return ::close(fd);
  }

  // Before each request on a connection: a second one means libcurl found
  // the kept-alive connection dead and sends the request again.
  static int
  on_request(void* user, char* /*ip*/, char* /*local_ip*/, int /*port*/, int /*local_port*/)
  {
    auto& t = *static_cast<TransferLoop::Transfer*>(user);
    ++t.attempts;
    if (t.connects > 0) {
      curl_tlssessioninfo* tls = nullptr;
      if (curl_easy_getinfo(t.easy, CURLINFO_TLS_SSL_PTR, &tls) == CURLE_OK && tls != nullptr &&
          tls->backend == CURLSSLBACKEND_OPENSSL && tls->internals != nullptr) {
        t.result.tls_resumed = SSL_session_reused(static_cast<SSL*>(tls->internals)) == 1;
      }
    }
    if (t.attempts == 1) {
      t.result.reused = t.connects == 0;
    } else if (t.connects > 0) {
      t.result.retried_fresh = true;
    }
    return CURL_PREREQFUNC_OK;
  }

  static int on_socket(CURL* /*easy*/, curl_socket_t fd, int what, void* user, void* socket_data)
  {
    return static_cast<TransferLoop*>(user)->on_socket(fd, what, socket_data);
  }

  static int on_timer(CURLM* /*multi*/, long timeout_ms, void* user)
  {
    static_cast<TransferLoop*>(user)->on_timer(timeout_ms);
    return 0;
  }
};

TransferLoop::TransferLoop()
    : TransferLoop(Options{})
{
}

TransferLoop::TransferLoop(Options options)
    : options_(std::move(options))
{
  global_init();
  epoll_fd_.reset(::epoll_create1(EPOLL_CLOEXEC));
  wake_fd_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  timer_fd_.reset(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
  if (!epoll_fd_ || !wake_fd_ || !timer_fd_) {
    throw_errno("transfer loop descriptors");
  }
  for (const int fd : {wake_fd_.get(), timer_fd_.get()}) {
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.fd = fd;
    if (::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, fd, &event) != 0) {
      throw_errno("epoll_ctl");
    }
  }
  share_ = curl_share_init();
  curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
  open_multi();
  const std::lock_guard lock(g_loops_mutex);
  g_loops.insert(this);
}

TransferLoop::~TransferLoop()
{
  {
    const std::lock_guard lock(g_loops_mutex);
    g_loops.erase(this);
  }
  std::vector<std::function<void()>> posted;
  {
    const std::lock_guard lock(mutex_);
    closed_ = true;
    posted.swap(posted_);
  }
  // Queued starts end with `shutdown` (begin() sees closed_), queued cancels
  // find nothing; then whatever runs ends the same way.
  for (auto& task : posted) {
    task();
  }
  // finish() takes each out; nothing new comes in (post() refuses now).
  while (!transfers_.empty()) {
    finish(*transfers_.begin()->second, TransferError::shutdown, "the daemon is shutting down");
  }
  while (!waits_.empty()) {
    end_wait(waits_.begin()->first, false);
  }
  for (CURL* easy : spare_) {
    curl_easy_cleanup(easy);
  }
  curl_multi_cleanup(as_multi(multi_)); // closes the kept-alive connections (pools_ still live)
  curl_share_cleanup(share_);
}

TransferLoop::Pool&
TransferLoop::pool(const std::string& name)
{
  const std::lock_guard lock(mutex_);
  auto& slot = pools_[name];
  if (!slot) {
    slot = std::make_unique<Pool>();
  }
  return *slot;
}

core::UpstreamPoolStats
TransferLoop::stats(std::string_view name) const
{
  const std::lock_guard lock(mutex_);
  core::UpstreamPoolStats stats;
  stats.max_idle = options_.max_cached;
  const auto it = pools_.find(name);
  if (it == pools_.end()) {
    return stats;
  }
  const Pool& p = *it->second;
  const std::size_t open = p.open.load(std::memory_order_relaxed);
  const std::size_t active = p.active.load(std::memory_order_relaxed);
  stats.leased = std::min(open, active);
  stats.idle = open - stats.leased;
  stats.reused = p.reused.load(std::memory_order_relaxed);
  stats.opened = p.opened.load(std::memory_order_relaxed);
  stats.stale_retries = p.stale.load(std::memory_order_relaxed);
  return stats;
}

bool
TransferLoop::closing() const
{
  const std::lock_guard lock(mutex_);
  return closed_;
}

void
TransferLoop::open_multi()
{
  multi_ = curl_multi_init();
  curl_multi_setopt(as_multi(multi_), CURLMOPT_SOCKETFUNCTION, &TransferCallbacks::on_socket);
  curl_multi_setopt(as_multi(multi_), CURLMOPT_SOCKETDATA, this);
  curl_multi_setopt(as_multi(multi_), CURLMOPT_TIMERFUNCTION, &TransferCallbacks::on_timer);
  curl_multi_setopt(as_multi(multi_), CURLMOPT_TIMERDATA, this);
  curl_multi_setopt(as_multi(multi_), CURLMOPT_MAXCONNECTS, static_cast<long>(options_.max_cached));
}

void
TransferLoop::close_idle()
{
  idle_due_.reset();
  if (!transfers_.empty()) {
    return; // busy: libcurl prunes what outlived MAXAGE_CONN as exchanges begin
  }
  // Nothing runs, so every cached connection has idled since the last
  // exchange ended: a new multi handle, the old one's connections closed.
  curl_multi_cleanup(as_multi(multi_));
  curl_due_.reset();
  open_multi();
}

core::UpstreamPoolStats
TransferLoop::all_stats(std::string_view pool)
{
  core::UpstreamPoolStats all;
  const std::lock_guard lock(g_loops_mutex);
  for (const TransferLoop* loop : g_loops) {
    all += loop->stats(pool);
  }
  return all;
}

TransferLoop*
TransferLoop::here() noexcept
{
  return t_bound;
}

TransferLoop::Binding::Binding(TransferLoop* loop) noexcept
    : previous_(std::exchange(t_bound, loop))
{
}

TransferLoop::Binding::~Binding()
{
  t_bound = previous_;
}

void
TransferLoop::defer(std::function<void()> task)
{
  if (!post(task)) {
    task(); // the destructor is running: it is the driving thread now
  }
}

void
TransferLoop::at(TransferClock::time_point when,
                 std::stop_token stop,
                 std::function<void(bool)> fired)
{
  auto wait = std::make_unique<Wait>();
  wait->id = next_id_.fetch_add(1, std::memory_order_relaxed);
  wait->when = when;
  wait->stop = std::move(stop);
  wait->fired = std::move(fired);
  auto shared = std::make_shared<std::unique_ptr<Wait>>(std::move(wait));
  std::function<void()> task = [this, shared] { begin_wait(std::move(*shared)); };
  if (!post(task)) {
    (*shared)->fired(false);
  }
}

void
TransferLoop::begin_wait(std::unique_ptr<Wait> owned)
{
  Wait& w = *owned;
  const bool closed = closing();
  const Id id = w.id;
  waits_.emplace(id, std::move(owned));
  wait_timers_.emplace(w.when, id);
  if (closed || w.stop.stop_requested()) {
    end_wait(id, false);
    return;
  }
  // Registered last: a stop that already happened posts its end now.
  w.on_stop.emplace(w.stop, std::function<void()>([this, id] {
                      std::function<void()> task = [this, id] { end_wait(id, false); };
                      post(task); // once the destructor began, it ends every wait itself
                    }));
}

void
TransferLoop::end_wait(Id id, bool fired)
{
  auto node = waits_.extract(id);
  if (node.empty()) {
    return; // ended already (fired, then stopped)
  }
  std::unique_ptr<Wait> owned = std::move(node.mapped());
  wait_timers_.erase({owned->when, id});
  // Waits for a stop callback running on another thread; that one only posts.
  owned->on_stop.reset();
  auto callback = std::move(owned->fired);
  owned.reset();
  try {
    callback(fired);
  } catch (const std::exception& e) {
    core::log::get("net")->error("transfer loop timer failed: {}", e.what());
  }
}

TransferLoop::Id
TransferLoop::start(TransferRequest request, TransferHandlers handlers, std::stop_token stop)
{
  auto transfer = std::make_unique<Transfer>();
  transfer->loop = this;
  transfer->id = next_id_.fetch_add(1, std::memory_order_relaxed);
  transfer->request = std::move(request);
  transfer->handlers = std::move(handlers);
  transfer->stop = std::move(stop);
  const Id id = transfer->id;
  running_.fetch_add(1, std::memory_order_relaxed);
  // std::function needs a copyable callable: the transfer rides in a shared_ptr.
  auto shared = std::make_shared<std::unique_ptr<Transfer>>(std::move(transfer));
  std::function<void()> task = [this, shared] { begin(std::move(*shared)); };
  if (!post(task)) {
    // The loop is being destroyed: the exchange ends here, untouched by it.
    running_.fetch_sub(1, std::memory_order_relaxed);
    const auto done = std::move((*shared)->handlers.on_done);
    if (done) {
      TransferResult result;
      result.error = TransferError::shutdown;
      result.message = "the daemon is shutting down";
      done(std::move(result));
    }
  }
  return id;
}

void
TransferLoop::cancel(Id id)
{
  std::function<void()> task = [this, id] {
    if (const auto it = transfers_.find(id); it != transfers_.end()) {
      finish(*it->second, TransferError::cancelled, "cancelled");
    }
  };
  post(task); // once the destructor began, it ends every exchange itself
}

bool
TransferLoop::post(std::function<void()>& task)
{
  bool needs_wake = false;
  {
    const std::lock_guard lock(mutex_);
    if (closed_) {
      return false;
    }
    posted_.push_back(std::move(task));
    // Inside poll() the queue is run before it returns: no wake-up needed.
    if (t_polling != this) {
      needs_wake = !woken_;
      woken_ = true;
    }
  }
  if (needs_wake) {
    wake();
  }
  return true;
}

void
TransferLoop::wake() noexcept
{
  const std::uint64_t one = 1;
  [[maybe_unused]] const auto written = ::write(wake_fd_.get(), &one, sizeof one);
}

bool
TransferLoop::run_posted()
{
  std::vector<std::function<void()>> tasks;
  {
    const std::lock_guard lock(mutex_);
    tasks.swap(posted_);
    woken_ = false;
  }
  for (auto& task : tasks) {
    task();
  }
  return !tasks.empty();
}

void
TransferLoop::begin(std::unique_ptr<Transfer> owned)
{
  Transfer& t = *owned;
  t.pool = &pool(t.request.pool);
  t.pool->active.fetch_add(1, std::memory_order_relaxed);
  t.last_byte = TransferClock::now();
  const bool closed = closing();
  const Id id = t.id;
  transfers_.emplace(id, std::move(owned));
  if (closed) {
    finish(t, TransferError::shutdown, "the daemon is shutting down");
    return;
  }
  if (t.stop.stop_requested()) {
    finish(t, TransferError::cancelled, "cancelled");
    return;
  }
  if (spare_.empty()) {
    t.easy = curl_easy_init();
  } else {
    t.easy = spare_.back();
    spare_.pop_back();
  }
  if (t.easy == nullptr) {
    finish(t, TransferError::broken, "libcurl could not make a handle");
    return;
  }
  CURL* e = t.easy;
  const auto& r = t.request;
  curl_easy_setopt(e, CURLOPT_PRIVATE, &t);
  curl_easy_setopt(e, CURLOPT_URL, r.url.c_str());
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  // The providers are called directly, as before libcurl: *_proxy variables
  // in the daemon's environment do not reroute calls that carry API keys.
  curl_easy_setopt(e, CURLOPT_PROXY, "");
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
  curl_easy_setopt(e, CURLOPT_SHARE, share_);
  if (const auto& ca = r.ca_file.empty() ? options_.ca_file : r.ca_file; !ca.empty()) {
    curl_easy_setopt(e, CURLOPT_CAINFO, ca.c_str());
  }
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(r.connect_timeout.count()));
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &TransferCallbacks::on_write);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &TransferCallbacks::on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, &TransferCallbacks::on_open);
  curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, &t);
  curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, &TransferCallbacks::on_close);
  curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, t.pool);
  curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, &TransferCallbacks::on_request);
  curl_easy_setopt(e, CURLOPT_PREREQDATA, &t);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t.error.data());
  for (const auto& header : r.headers) {
    t.headers = curl_slist_append(t.headers, header.c_str());
  }
  // No "Expect: 100-continue" round trip before a large body.
  t.headers = curl_slist_append(t.headers, "Expect:");
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, t.headers);
  if (r.method == "POST") {
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(r.body.size()));
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, r.body.data());
  } else {
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    if (r.method != "GET") {
      curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r.method.c_str());
    }
  }
  if (r.max_idle.count() <= 0) {
    curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
    curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
  } else {
    curl_easy_setopt(e, CURLOPT_MAXAGE_CONN, max_age(r.max_idle, t.pool->hint));
  }
  if (curl_multi_add_handle(as_multi(multi_), e) != CURLM_OK) {
    finish(t, TransferError::broken, "libcurl refused the exchange");
    return;
  }
  schedule(t);
  // Registered last: a stop that already happened posts its cancel now.
  t.on_stop.emplace(t.stop, std::function<void()>([this, id] { cancel(id); }));
}

void
TransferLoop::finish(Transfer& t, TransferError error, std::string message)
{
  timers_.erase({t.timer_due, t.id});
  if (t.easy != nullptr) {
    curl_multi_remove_handle(as_multi(multi_), t.easy); // mid-answer: the connection is closed
    if (t.result.answered) {
      t.read_head();
    }
    // Kept for the next exchange: its buffers are not allocated again.
    if (spare_.size() < std::min(options_.max_cached, kMaxSpareHandles)) {
      curl_easy_reset(t.easy);
      spare_.push_back(t.easy);
    } else {
      curl_easy_cleanup(t.easy);
    }
    t.easy = nullptr;
  }
  curl_slist_free_all(t.headers);
  t.headers = nullptr;
  if (t.result.reused) {
    t.pool->reused.fetch_add(1, std::memory_order_relaxed);
  }
  if (t.result.retried_fresh) {
    t.pool->stale.fetch_add(1, std::memory_order_relaxed);
  }
  if (error == TransferError::none) {
    if (const auto hint = keep_alive_timeout(t.result.header("Keep-Alive"))) {
      t.pool->hint = *hint;
    }
  }
  t.pool->active.fetch_sub(1, std::memory_order_relaxed);
  t.result.error = error;
  t.result.message = std::move(message);

  auto node = transfers_.extract(t.id);
  std::unique_ptr<Transfer> owned = std::move(node.mapped());
  running_.fetch_sub(1, std::memory_order_relaxed);
  if (transfers_.empty() && owned->request.max_idle.count() > 0) {
    // libcurl closes an idle cached connection only when it next looks at
    // its cache; with nothing running that may be never.
    idle_due_ = TransferClock::now() + owned->request.max_idle;
  }
  // Waits for a stop callback running on another thread; that one only posts.
  owned->on_stop.reset();
  auto done = std::move(owned->handlers.on_done);
  TransferResult result = std::move(owned->result);
  owned.reset();
  if (done) {
    try {
      done(std::move(result));
    } catch (const std::exception& e) {
      core::log::get("net")->error("transfer handler failed: {}", e.what());
    }
  }
}

void
TransferLoop::collect_done()
{
  int left = 0;
  while (CURLMsg* message = curl_multi_info_read(as_multi(multi_), &left)) {
    if (message->msg != CURLMSG_DONE) {
      continue;
    }
    CURL* easy = message->easy_handle; // `message` dies with the handle's removal
    const CURLcode code = message->data.result;
    Transfer* t = nullptr;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, &t);
    if (t == nullptr) {
      continue;
    }
    if (code == CURLE_OK) {
      finish(*t, TransferError::none, {});
      continue;
    }
    if (t->abort != TransferError::none) {
      finish(*t, t->abort, std::move(t->abort_message));
      continue;
    }
    curl_off_t connected = 0;
    curl_easy_getinfo(easy, CURLINFO_CONNECT_TIME_T, &connected);
    std::string text = curl_easy_strerror(code);
    if (t->error[0] != '\0') {
      text += ": ";
      text += t->error.data();
    }
    finish(*t, classify(code, connected > 0), std::move(text));
  }
}

void
TransferLoop::schedule(Transfer& t)
{
  timers_.erase({t.timer_due, t.id});
  t.timer_due = t.due();
  timers_.emplace(t.timer_due, t.id);
}

void
TransferLoop::expire_due(TransferClock::time_point now)
{
  if (idle_due_ && *idle_due_ <= now) {
    close_idle();
  }
  while (!wait_timers_.empty() && wait_timers_.begin()->first <= now) {
    end_wait(wait_timers_.begin()->second, true);
  }
  while (!timers_.empty() && timers_.begin()->first <= now) {
    const Id id = timers_.begin()->second;
    timers_.erase(timers_.begin());
    const auto it = transfers_.find(id);
    if (it == transfers_.end()) {
      continue;
    }
    Transfer& t = *it->second;
    // Entries are not moved on every byte: one that fires early is put back
    // at the exchange's real time.
    if (const auto due = t.due(); due > now) {
      t.timer_due = due;
      timers_.emplace(due, id);
      continue;
    }
    if (now >= t.request.deadline) {
      finish(t, TransferError::timeout, "the deadline passed");
    } else if (t.result.answered) {
      finish(t,
             TransferError::stalled,
             "the answer stalled: nothing for " + std::to_string(t.silence().count()) + " ms");
    } else {
      finish(t,
             TransferError::timeout,
             "no answer within " + std::to_string(t.request.read_timeout.count()) + " ms");
    }
  }
}

void
TransferLoop::arm_timer()
{
  std::optional<TransferClock::time_point> due = curl_due_;
  if (idle_due_ && (!due || *idle_due_ < *due)) {
    due = idle_due_;
  }
  for (const auto* set : {&timers_, &wait_timers_}) {
    if (!set->empty() && (!due || set->begin()->first < *due)) {
      due = set->begin()->first;
    }
  }
  if (due == armed_) {
    return;
  }
  armed_ = due;
  itimerspec spec{};
  if (due) {
    // steady_clock is CLOCK_MONOTONIC: an absolute time in the past fires at once.
    const auto since = std::max(due->time_since_epoch(), TransferClock::duration(1));
    const auto secs = std::chrono::duration_cast<seconds>(since);
    spec.it_value.tv_sec = secs.count();
    spec.it_value.tv_nsec =
        std::chrono::duration_cast<std::chrono::nanoseconds>(since - secs).count();
  }
  ::timerfd_settime(timer_fd_.get(), TFD_TIMER_ABSTIME, &spec, nullptr);
}

int
TransferLoop::on_socket(int fd, int what, void* socket_data)
{
  if (what == CURL_POLL_REMOVE) {
    ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, fd, nullptr);
    curl_multi_assign(as_multi(multi_), fd, nullptr);
    return 0;
  }
  epoll_event event{};
  event.events =
      ((what & CURL_POLL_IN) != 0 ? EPOLLIN : 0U) | ((what & CURL_POLL_OUT) != 0 ? EPOLLOUT : 0U);
  event.data.fd = fd;
  // A descriptor number libcurl still knows may be a new socket epoll has
  // never seen (the old one closed), and the reverse: try the other way.
  int op = socket_data == nullptr ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
  if (::epoll_ctl(epoll_fd_.get(), op, fd, &event) != 0) {
    op = op == EPOLL_CTL_ADD ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    ::epoll_ctl(epoll_fd_.get(), op, fd, &event);
  }
  if (socket_data == nullptr) {
    curl_multi_assign(as_multi(multi_), fd, this);
  }
  return 0;
}

void
TransferLoop::on_timer(long timeout_ms)
{
  if (timeout_ms < 0) {
    curl_due_.reset();
  } else {
    curl_due_ = TransferClock::now() + milliseconds(timeout_ms);
  }
}

void
TransferLoop::dispatch()
{
  poll(0);
}

void
TransferLoop::poll(int timeout_ms)
{
  std::array<epoll_event, 64> events{};
  const int count =
      ::epoll_wait(epoll_fd_.get(), events.data(), static_cast<int>(events.size()), timeout_ms);
  const PollingScope polling(this);
  int running = 0;
  for (int i = 0; i < count; ++i) {
    const int fd = events[static_cast<std::size_t>(i)].data.fd;
    const std::uint32_t flags = events[static_cast<std::size_t>(i)].events;
    if (fd == wake_fd_.get()) {
      std::uint64_t value = 0;
      [[maybe_unused]] const auto got = ::read(wake_fd_.get(), &value, sizeof value);
      run_posted();
    } else if (fd == timer_fd_.get()) {
      std::uint64_t value = 0;
      [[maybe_unused]] const auto got = ::read(timer_fd_.get(), &value, sizeof value);
      armed_.reset(); // it fired, so it is unset
    } else {
      int action = 0;
      if ((flags & (EPOLLIN | EPOLLHUP | EPOLLRDHUP)) != 0) {
        action |= CURL_CSELECT_IN;
      }
      if ((flags & EPOLLOUT) != 0) {
        action |= CURL_CSELECT_OUT;
      }
      if ((flags & EPOLLERR) != 0) {
        action |= CURL_CSELECT_ERR;
      }
      curl_multi_socket_action(as_multi(multi_), fd, action, &running);
    }
  }
  // What the handlers started or cancelled is done in this same pass, and a
  // new exchange's first step (libcurl asks for a 0 ms timer) with it.
  for (int round = 0; round < 8; ++round) {
    const auto now = TransferClock::now();
    if (curl_due_ && *curl_due_ <= now) {
      curl_due_.reset();
      curl_multi_socket_action(as_multi(multi_), CURL_SOCKET_TIMEOUT, 0, &running);
    }
    collect_done();
    expire_due(now);
    if (!run_posted()) {
      break;
    }
  }
  {
    // Tasks posted from this thread did not write the eventfd.
    const std::lock_guard lock(mutex_);
    if (!posted_.empty() && !woken_) {
      woken_ = true;
      wake();
    }
  }
  arm_timer();
}

void
TransferLoop::run(std::stop_token stop)
{
  const std::stop_callback wake_on_stop(stop, [this] { wake(); });
  while (!stop.stop_requested()) {
    poll(-1);
  }
}

TransferThread::TransferThread()
    : TransferThread(TransferLoop::Options{})
{
}

TransferThread::TransferThread(TransferLoop::Options options)
    : loop_(std::move(options))
    , thread_([this](std::stop_token stop) {
      const TransferLoop::Binding bound(&loop_);
      loop_.run(std::move(stop));
    })
{
}

} // namespace exai::net
