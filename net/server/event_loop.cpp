#include "net/server/event_loop.hpp"

#include "net/server/connection.hpp"

#include <sched.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <system_error>

namespace exai::net {

namespace {

constexpr std::uint64_t kWakeId = 0; // connection ids start at 1
constexpr std::uint64_t kTransfersId = ~std::uint64_t{0};
constexpr std::size_t kReceiveBuffer = std::size_t{256} << 10U;

} // namespace

EventLoop::EventLoop(std::size_t index,
                     Millis tick,
                     std::chrono::microseconds busy_poll,
                     std::shared_ptr<spdlog::logger> log,
                     std::optional<TransferLoop::Options> transfers)
    : index_(index)
    , tick_(tick)
    , busy_poll_(busy_poll)
    , log_(std::move(log))
    , buffer_(kReceiveBuffer)
{
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) {
    throw std::system_error(errno, std::generic_category(), "epoll_create1");
  }
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) {
    const int error = errno;
    ::close(epoll_fd_);
    throw std::system_error(error, std::generic_category(), "eventfd");
  }
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.u64 = kWakeId;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &event) != 0) {
    const int error = errno;
    ::close(wake_fd_);
    ::close(epoll_fd_);
    throw std::system_error(error, std::generic_category(), "epoll_ctl(eventfd)");
  }
  if (transfers) {
    auto nested = std::make_unique<TransferLoop>(std::move(*transfers));
    event.data.u64 = kTransfersId;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, nested->fd(), &event) != 0) {
      const int error = errno;
      ::close(wake_fd_);
      ::close(epoll_fd_);
      throw std::system_error(error, std::generic_category(), "epoll_ctl(transfer loop)");
    }
    transfers_ = std::move(nested);
  }
}

EventLoop::~EventLoop()
{
  stop();
  // Exchanges still running end with `shutdown` here, while the connections
  // their callers may write to still exist.
  transfers_.reset();
  connections_.clear();
  ::close(wake_fd_);
  ::close(epoll_fd_);
}

void
EventLoop::start(TickFn on_tick)
{
  on_tick_ = std::move(on_tick);
  running_ = true;
  thread_ = std::thread([this] { run(); });
}

void
EventLoop::stop() noexcept
{
  {
    const std::lock_guard lock(mutex_);
    stopped_ = true;
  }
  running_ = false;
  wake();
  if (thread_.joinable()) {
    thread_.join();
  }
}

template <typename Item>
void
EventLoop::enqueue(std::vector<Item>& queue, Item item, bool needs_wake) noexcept
{
  bool first = false;
  try {
    const std::lock_guard lock(mutex_);
    if (stopped_) {
      return;
    }
    queue.push_back(std::move(item));
    first = !woken_ && needs_wake;
    woken_ = woken_ || first;
  } catch (const std::bad_alloc&) {
    return;
  }
  if (first) {
    wake(); // one wake-up covers everything queued before the loop runs it
  }
}

void
EventLoop::post(Task task) noexcept
{
  enqueue(tasks_, std::move(task), true);
}

void
EventLoop::request_flush(std::shared_ptr<Connection> connection) noexcept
{
  // On the loop thread the flush runs at the end of this round anyway:
  // frames queued while handling one read leave together.
  enqueue(flushes_, std::move(connection), !on_loop_thread());
}

void
EventLoop::wake() noexcept
{
  const std::uint64_t one = 1;
  [[maybe_unused]] const auto n = ::write(wake_fd_, &one, sizeof one);
}

void
EventLoop::adopt(const std::shared_ptr<Connection>& connection, std::uint32_t events)
{
  epoll_event event{};
  event.events = events;
  event.data.u64 = connection->id();
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, connection->fd(), &event) != 0) {
    throw std::system_error(errno, std::generic_category(), "epoll_ctl(add)");
  }
  connections_[connection->id()] = connection;
  connection->adopted_ = true;
}

void
EventLoop::watch(const Connection& connection, std::uint32_t events) noexcept
{
  epoll_event event{};
  event.events = events;
  event.data.u64 = connection.id();
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, connection.fd(), &event) != 0 && errno == ENOENT) {
    // Not watched at the moment (handed to another thread): add it back.
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, connection.fd(), &event);
  }
}

void
EventLoop::unwatch(const Connection& connection) noexcept
{
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, connection.fd(), nullptr);
}

void
EventLoop::forget(const Connection& connection) noexcept
{
  if (connection.fd() >= 0) {
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, connection.fd(), nullptr);
  }
  connections_.erase(connection.id());
}

std::vector<std::shared_ptr<Connection>>
EventLoop::connections() const
{
  std::vector<std::shared_ptr<Connection>> all;
  all.reserve(connections_.size());
  for (const auto& [id, connection] : connections_) {
    all.push_back(connection);
  }
  return all;
}

void
EventLoop::run_posted() noexcept
{
  // Work done here may queue more (a task that replies, a flush that drains
  // and closes): repeat until nothing is left, within reason.
  constexpr int kRounds = 16;
  for (int round = 0; round < kRounds; ++round) {
    std::vector<Task> tasks;
    std::vector<std::shared_ptr<Connection>> flushes;
    {
      const std::lock_guard lock(mutex_);
      if (tasks_.empty() && flushes_.empty()) {
        woken_ = false;
        return;
      }
      tasks.swap(tasks_);
      flushes.swap(flushes_);
    }
    for (auto& task : tasks) {
      try {
        task();
      } catch (const std::exception& e) {
        log_->error("loop task failed loop={} error=\"{}\"", index_, e.what());
      }
    }
    for (const auto& connection : flushes) {
      connection->flush();
    }
  }
  {
    const std::lock_guard lock(mutex_);
    woken_ = false;
  }
  wake(); // more is left: the next round picks it up without sleeping
}

void
EventLoop::run() noexcept
{
  thread_id_ = std::this_thread::get_id();
  const TransferLoop::Binding bound(transfers_.get());
  constexpr int kMaxEvents = 256;
  std::array<epoll_event, kMaxEvents> events{};
  auto now = SteadyClock::now();
  auto next_tick = now + tick_;
  bool poll_first = false;
  while (running_) {
    const auto idle_since = now; // the previous round's work ended here
    const int n = wait(events, next_tick, poll_first);
    poll_first = poll_next_wait(n, SteadyClock::now() - idle_since, busy_poll_);
    for (int i = 0; i < n; ++i) {
      const auto& event = events.at(static_cast<std::size_t>(i));
      // epoll_event is packed on x86-64: its u64 sits 4 bytes in, so it is
      // copied out before anything (find's const reference) binds to it.
      const std::uint64_t id = event.data.u64;
      if (id == kTransfersId) {
        transfers_->dispatch(); // model calls: answers, timers, their continuations
        continue;
      }
      if (id == kWakeId) {
        std::uint64_t drained = 0;
        [[maybe_unused]] const auto r = ::read(wake_fd_, &drained, sizeof drained);
        continue; // posted work runs below, once per round
      }
      const auto it = connections_.find(id);
      if (it == connections_.end()) {
        continue; // dropped since the wait returned
      }
      const auto connection = it->second; // keeps it alive through a drop
      connection->handle_events(event.events);
    }
    // Replies queued while handling this round's input, and work posted by
    // other threads, leave now: frames queued together go out in one write.
    run_posted();
    now = SteadyClock::now();
    if (now >= next_tick) {
      if (on_tick_) {
        on_tick_(*this, now);
      }
      next_tick = now + tick_;
    }
  }
  // Stopping: run what was posted (drops, final flushes) once more.
  run_posted();
}

int
EventLoop::wait(std::span<epoll_event> events, SteadyClock::time_point next_tick, bool poll_first)
{
  // Adaptive busy polling (EXAI_WS_BUSY_POLL_US, rule in poll_next_wait). A
  // client that sends its next frame soon after our reply finds the loop
  // awake instead of paying for a thread wake-up. An idle or slow-paced
  // daemon never spins.
  const int capacity = static_cast<int>(events.size());
  if (poll_first) {
    const auto until = SteadyClock::now() + busy_poll_;
    do {
      const int n = ::epoll_wait(epoll_fd_, events.data(), capacity, 0);
      if (n != 0) {
        return std::max(n, 0);
      }
      // A runnable thread on this core (the client, on a small machine)
      // goes first: polling must not delay the peer it waits for.
      ::sched_yield();
    } while (running_ && SteadyClock::now() < until);
  }
  const auto wait = std::chrono::duration_cast<Millis>(next_tick - SteadyClock::now());
  const int n = ::epoll_wait(
      epoll_fd_, events.data(), capacity, static_cast<int>(std::max<Millis::rep>(wait.count(), 0)));
  return std::max(n, 0);
}

} // namespace exai::net
