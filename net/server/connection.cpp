#include "net/server/connection.hpp"

#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstring>

namespace exai::net {

namespace {

// writev takes at most IOV_MAX pieces; a batch beyond that leaves in the next
// call of the same flush.
constexpr std::size_t kMaxPieces = 64;

} // namespace

Connection::Connection(EventLoop& loop,
                       ConnectionObserver& observer,
                       Accepted socket,
                       OutputLimits limits)
    : loop_(loop)
    , observer_(observer)
    , fd_(std::move(socket.fd))
    , id_(socket.id)
    , peer_ip_(std::move(socket.peer_ip))
    , loopback_peer_(socket.loopback_peer)
    , limits_(limits)
{
}

Connection::~Connection() = default;

std::size_t
Connection::receive_into(std::string& input, std::size_t want, std::string_view closed_why)
{
  // Received into the loop's buffer and appended: `input` grows by what
  // arrived, not by what was announced. Resizing by `want` zero-filled it
  // first, so one byte of a body announced as 32 MiB cost a 32 MiB memset and
  // 32 MiB of resident memory.
  const auto buffer = loop_.receive_buffer();
  const ssize_t n = ::recv(fd(), buffer.data(), std::min(want, buffer.size()), MSG_DONTWAIT);
  if (n <= 0) {
    if (n == 0) {
      drop(std::string(closed_why));
    } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      drop("receive failed");
    }
    return 0;
  }
  input.append(buffer.data(), static_cast<std::size_t>(n));
  return static_cast<std::size_t>(n);
}

bool
Connection::dropped() const noexcept
{
  const std::lock_guard lock(mutex_);
  return dropped_;
}

bool
Connection::output_empty() const
{
  const std::lock_guard lock(mutex_);
  return out_.empty();
}

bool
Connection::output_finished() const
{
  const std::lock_guard lock(mutex_);
  return sealed_ && out_.empty();
}

std::size_t
Connection::queued_bytes() const
{
  const std::lock_guard lock(mutex_);
  return out_bytes_;
}

void
Connection::hold_output() noexcept
{
  const std::lock_guard lock(mutex_);
  held_ = true;
}

void
Connection::release_output() noexcept
{
  {
    const std::lock_guard lock(mutex_);
    held_ = false;
    if (flush_requested_ || out_.empty()) {
      return;
    }
    flush_requested_ = true;
  }
  loop_.request_flush(shared_from_this());
}

void
Connection::set_read_events(std::uint32_t events) noexcept
{
  read_events_ = events;
  if (adopted_ && !dropped()) {
    update_watch();
  }
}

bool
Connection::queue(std::string bytes, std::string tag, bool last) noexcept
{
  bool overflow = false;
  bool request = false;
  {
    const std::lock_guard lock(mutex_);
    if (dropped_ || sealed_) {
      return false;
    }
    if (out_bytes_ + bytes.size() > limits_.hard_cap) {
      overflow = true;
    } else if (!last && out_.empty() && !held_ && !loop_.on_loop_thread()) {
      // Nothing is ahead of it: written here, the frame costs one sendmsg
      // instead of waking the loop to write it. Only a remainder (the peer's
      // buffer is full) or a failure goes through the loop.
      const std::size_t sent = send_now(bytes);
      if (sent == bytes.size()) {
        return true;
      }
      try {
        out_.push_back(Chunk{std::move(bytes), std::move(tag)});
        out_offset_ = sent;
        out_bytes_ += out_.back().bytes.size() - sent;
      } catch (const std::bad_alloc&) {
        overflow = true;
      }
    } else {
      try {
        if (!bytes.empty()) { // an empty `last` item only seals
          out_.push_back(Chunk{std::move(bytes), std::move(tag)});
          out_bytes_ += out_.back().bytes.size();
        }
      } catch (const std::bad_alloc&) {
        overflow = true;
      }
    }
    if (overflow || last) {
      sealed_ = true;
    }
    if (!overflow) {
      if (out_bytes_ > limits_.bound && over_bound_since_ == SteadyClock::time_point{}) {
        over_bound_since_ = SteadyClock::now();
      }
      request = !flush_requested_;
      flush_requested_ = true;
    }
  }
  if (overflow) {
    // The client cannot keep up with what it is owed. What it misses stays
    // stored; the session collects it when it resumes.
    drop_later("output over its hard cap (4 x EXAI_WS_SEND_QUEUE_BYTES)");
    return false;
  }
  if (request) {
    loop_.request_flush(shared_from_this());
  }
  return true;
}

std::size_t
Connection::send_now(const std::string& bytes) noexcept
{
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n =
        ::send(fd_.get(), bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      break; // full, or failed: the loop's flush retries it and reports a failure
    }
    done += static_cast<std::size_t>(n);
  }
  return done;
}

void
Connection::flush() noexcept
{
  bool drained = false;
  bool failed = false;
  int failure = 0;
  {
    std::unique_lock lock(mutex_);
    flush_requested_ = false;
    if (dropped_ || held_) {
      return;
    }
    while (!out_.empty()) {
      std::array<iovec, kMaxPieces> pieces{};
      std::size_t count = 0;
      for (auto it = out_.begin(); it != out_.end() && count < kMaxPieces; ++it, ++count) {
        const std::size_t skip = count == 0 ? out_offset_ : 0;
        pieces.at(count).iov_base = it->bytes.data() + skip;
        pieces.at(count).iov_len = it->bytes.size() - skip;
      }
      msghdr message{};
      message.msg_iov = pieces.data();
      message.msg_iovlen = count;
      const ssize_t n = ::sendmsg(fd_.get(), &message, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EINTR) {
          continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          break;
        }
        failed = true;
        failure = errno;
        break;
      }
      auto sent = static_cast<std::size_t>(n);
      out_bytes_ -= sent;
      while (sent > 0) {
        const std::size_t left = out_.front().bytes.size() - out_offset_;
        if (sent < left) {
          out_offset_ += sent;
          sent = 0;
        } else {
          sent -= left;
          out_offset_ = 0;
          out_.pop_front();
        }
      }
    }
    if (out_.empty()) {
      out_ = std::deque<Chunk>(); // an idle connection holds no output memory
      out_bytes_ = 0;
      drained = true;
    }
    if (out_bytes_ <= limits_.bound) {
      over_bound_since_ = {};
    } else if (over_bound_since_ == SteadyClock::time_point{}) {
      over_bound_since_ = SteadyClock::now();
    }
  }
  if (failed) {
    drop_now(std::string("send failed: ") + std::strerror(failure));
    return;
  }
  const bool want = !drained;
  if (want != want_write_) {
    want_write_ = want;
    if (adopted_) {
      update_watch();
    }
  }
  if (drained) {
    on_drained();
  }
}

void
Connection::on_tick(SteadyClock::time_point now) noexcept
{
  bool slow = false;
  {
    const std::lock_guard lock(mutex_);
    slow = over_bound_since_ != SteadyClock::time_point{} &&
           now - over_bound_since_ >= limits_.slow_after;
  }
  if (slow) {
    loop_.log()->info("slow client closed id={} peer={} queued_bytes={} reason=\"output over "
                      "EXAI_WS_SEND_QUEUE_BYTES for EXAI_WS_SLOW_CLIENT_SECS\"",
                      id_,
                      peer_ip_,
                      queued_bytes());
    drop_now("slow client");
  }
}

void
Connection::handle_events(std::uint32_t events) noexcept
{
  const auto self = shared_from_this(); // a drop below must not destroy us mid-call
  try {
    if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0U) {
      on_readable();
    }
    if ((events & EPOLLOUT) != 0U && !dropped()) {
      flush();
    }
  } catch (const std::exception& e) {
    loop_.log()->error("connection failed id={} error=\"{}\"", id_, e.what());
    drop_now("internal error");
  }
}

void
Connection::drop(std::string why) noexcept
{
  if (loop_.on_loop_thread()) {
    drop_now(why);
    return;
  }
  drop_later(std::move(why));
}

void
Connection::drop_later(std::string why) noexcept
{
  loop_.post([self = shared_from_this(), why = std::move(why)] { self->drop_now(why); });
}

void
Connection::drop_now(std::string_view why) noexcept
{
  const auto self = shared_from_this();
  std::vector<std::string> unsent;
  {
    const std::lock_guard lock(mutex_);
    if (dropped_) {
      return;
    }
    dropped_ = true;
    sealed_ = true;
    for (auto& chunk : out_) {
      if (!chunk.tag.empty()) {
        unsent.push_back(std::move(chunk.tag));
      }
    }
    out_.clear();
    out_bytes_ = 0;
  }
  loop_.forget(*this);
  // Unblocks a thread using a duplicate of the socket (an HTTP exchange).
  ::shutdown(fd_.get(), SHUT_RDWR);
  fd_.reset();
  loop_.log()->debug("connection closed id={} peer={} reason=\"{}\"", id_, peer_ip_, why);
  observer_.on_connection_dropped(*this);
  on_dropped(std::move(unsent));
}

void
Connection::on_dropped(std::vector<std::string> /*unsent_tags*/) noexcept
{
}

core::UniqueFd
Connection::release_socket() noexcept
{
  {
    const std::lock_guard lock(mutex_);
    dropped_ = true;
    sealed_ = true;
    out_.clear();
    out_bytes_ = 0;
  }
  loop_.forget(*this);
  return std::move(fd_);
}

void
Connection::update_watch() noexcept
{
  loop_.watch(*this, read_events_ | (want_write_ ? EPOLLOUT : 0U));
}

} // namespace exai::net
