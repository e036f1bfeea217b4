#include "net/ws/session_registry.hpp"

#include "net/protocol/op_protocol.hpp"

namespace exai::net {

std::string
SessionRegistry::create(Clock::time_point now)
{
  std::string id = protocol::make_session_id();
  const std::lock_guard lock(mutex_);
  if (sessions_.size() >= kMaxSessions) {
    evict_oldest_detached();
  }
  sessions_[id] = Entry{1, now};
  ++attached_;
  return id;
}

bool
SessionRegistry::resume(const std::string& session_id, Clock::time_point now)
{
  const std::lock_guard lock(mutex_);
  const auto it = sessions_.find(session_id);
  if (it == sessions_.end()) {
    return false;
  }
  if (it->second.connections == 0) {
    if (now - it->second.last_seen > ttl_) {
      sessions_.erase(it);
      return false;
    }
    ++attached_;
  }
  ++it->second.connections;
  it->second.last_seen = now;
  return true;
}

void
SessionRegistry::detach(const std::string& session_id, Clock::time_point now)
{
  const std::lock_guard lock(mutex_);
  const auto it = sessions_.find(session_id);
  if (it == sessions_.end() || it->second.connections == 0) {
    return;
  }
  if (--it->second.connections == 0) {
    --attached_;
  }
  it->second.last_seen = now;
}

void
SessionRegistry::sweep(Clock::time_point now)
{
  const std::lock_guard lock(mutex_);
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    if (it->second.connections == 0 && now - it->second.last_seen > ttl_) {
      it = sessions_.erase(it);
    } else {
      ++it;
    }
  }
}

std::size_t
SessionRegistry::size() const
{
  const std::lock_guard lock(mutex_);
  return sessions_.size();
}

std::size_t
SessionRegistry::attached() const
{
  const std::lock_guard lock(mutex_);
  return attached_;
}

void
SessionRegistry::evict_oldest_detached()
{
  auto oldest = sessions_.end();
  for (auto it = sessions_.begin(); it != sessions_.end(); ++it) {
    if (it->second.connections == 0 &&
        (oldest == sessions_.end() || it->second.last_seen < oldest->second.last_seen)) {
      oldest = it;
    }
  }
  if (oldest != sessions_.end()) {
    sessions_.erase(oldest);
  }
}

} // namespace exai::net
