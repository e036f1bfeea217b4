#include "net/upstream/connection_pool.hpp"

#include <poll.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <string>
#include <utility>

namespace exai::net {

namespace {

using std::chrono::milliseconds;

// How much of a server's Keep-Alive timeout is left unused: its clock started
// when it sent the answer, ours when we read it, and a request needs time to
// arrive.
constexpr milliseconds kHintMargin{1000};

// True when an idle connection has something to read: the server closed it
// (end of stream, reset) or sent bytes nobody asked for. Either way it cannot
// carry a request.
bool
looks_closed(int fd) noexcept
{
  ::pollfd entry{fd, POLLIN, 0};
  return fd < 0 || ::poll(&entry, 1, 0) != 0;
}

} // namespace

std::optional<std::chrono::seconds>
keep_alive_timeout(std::string_view header)
{
  std::string lower(header);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) {
    return static_cast<char>(std::tolower(c));
  });
  const auto at = lower.find("timeout=");
  if (at == std::string::npos) {
    return std::nullopt;
  }
  const char* begin = lower.data() + at + 8;
  const char* end = lower.data() + lower.size();
  long long seconds = 0;
  const auto [stop, ec] = std::from_chars(begin, end, seconds);
  if (ec != std::errc() || stop == begin || seconds < 0) {
    return std::nullopt;
  }
  return std::chrono::seconds(seconds);
}

ConnectionPool::ConnectionPool(Options options)
    : options_(std::move(options))
{
  if (!options_.clock) {
    options_.clock = [] { return Clock::now(); };
  }
}

ConnectionPool::~ConnectionPool() = default;

ConnectionPool::Clock::time_point
ConnectionPool::now() const
{
  return options_.clock();
}

std::optional<ConnectionPool::Lease>
ConnectionPool::take()
{
  std::vector<std::unique_ptr<UpstreamConnection>> dead; // closed outside the lock
  std::optional<Lease> lease;
  {
    const std::lock_guard lock(mutex_);
    const auto at = now();
    while (!idle_.empty()) {
      auto connection = std::move(idle_.back());
      idle_.pop_back();
      if (at >= connection->usable_until || looks_closed(connection->abort_fd.get())) {
        dead.push_back(std::move(connection));
        continue;
      }
      ++reused_;
      ++leased_;
      lease.emplace(Lease(*this, std::move(connection), true));
      break;
    }
  }
  return lease;
}

ConnectionPool::Lease
ConnectionPool::adopt(std::unique_ptr<UpstreamConnection> connection)
{
  const std::lock_guard lock(mutex_);
  ++opened_;
  ++leased_;
  return Lease(*this, std::move(connection), false);
}

void
ConnectionPool::count_stale_retry() noexcept
{
  const std::lock_guard lock(mutex_);
  ++stale_retries_;
}

void
ConnectionPool::give_back(std::unique_ptr<UpstreamConnection> connection,
                          std::optional<milliseconds> server_hint) noexcept
{
  milliseconds keep = options_.idle_timeout;
  if (server_hint) {
    keep = std::min(keep, *server_hint - std::min(kHintMargin, *server_hint / 2));
  }
  std::unique_ptr<UpstreamConnection> dropped; // closed outside the lock
  {
    const std::lock_guard lock(mutex_);
    --leased_;
    if (keep <= milliseconds(0) || options_.max_idle == 0) {
      dropped = std::move(connection);
    } else {
      connection->usable_until = now() + keep;
      if (idle_.size() >= options_.max_idle) {
        dropped = std::move(idle_.front()); // the oldest makes room
        idle_.erase(idle_.begin());
      }
      idle_.push_back(std::move(connection));
    }
  }
}

void
ConnectionPool::lease_ended() noexcept
{
  const std::lock_guard lock(mutex_);
  --leased_;
}

std::optional<milliseconds>
ConnectionPool::sweep()
{
  std::vector<std::unique_ptr<UpstreamConnection>> expired;
  std::optional<Clock::time_point> next;
  Clock::time_point at;
  {
    const std::lock_guard lock(mutex_);
    at = now();
    auto keep = idle_.begin();
    for (auto& connection : idle_) {
      if (at >= connection->usable_until) {
        expired.push_back(std::move(connection));
      } else {
        next = next ? std::min(*next, connection->usable_until) : connection->usable_until;
        *keep++ = std::move(connection);
      }
    }
    idle_.erase(keep, idle_.end());
  }
  if (!next) {
    return std::nullopt;
  }
  return std::chrono::ceil<milliseconds>(*next - at);
}

core::UpstreamPoolStats
ConnectionPool::stats() const
{
  const std::lock_guard lock(mutex_);
  core::UpstreamPoolStats s;
  s.idle = idle_.size();
  s.leased = leased_;
  s.max_idle = options_.idle_timeout.count() > 0 ? options_.max_idle : 0;
  s.reused = reused_;
  s.opened = opened_;
  s.stale_retries = stale_retries_;
  return s;
}

ConnectionPool::Lease::Lease(ConnectionPool& pool,
                             std::unique_ptr<UpstreamConnection> connection,
                             bool reused) noexcept
    : pool_(&pool)
    , connection_(std::move(connection))
    , reused_(reused)
{
}

ConnectionPool::Lease::Lease(Lease&& other) noexcept
    : pool_(std::exchange(other.pool_, nullptr))
    , connection_(std::move(other.connection_))
    , reused_(other.reused_)
{
}

ConnectionPool::Lease&
ConnectionPool::Lease::operator=(Lease&& other) noexcept
{
  if (this != &other) {
    close();
    pool_ = std::exchange(other.pool_, nullptr);
    connection_ = std::move(other.connection_);
    reused_ = other.reused_;
  }
  return *this;
}

ConnectionPool::Lease::~Lease()
{
  close();
}

void
ConnectionPool::Lease::close() noexcept
{
  if (pool_ != nullptr) {
    connection_.reset(); // the session's destructor closes the socket
    std::exchange(pool_, nullptr)->lease_ended();
  }
}

void
ConnectionPool::Lease::release(std::optional<milliseconds> server_hint) noexcept
{
  if (pool_ != nullptr) {
    std::exchange(pool_, nullptr)->give_back(std::move(connection_), server_hint);
  }
}

} // namespace exai::net
