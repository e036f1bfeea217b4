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
  sessions_[id] = Entry{1, now, detached_.end()};
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
    detached_.erase(it->second.detached);
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
  it->second.last_seen = now;
  if (--it->second.connections == 0) {
    --attached_;
    it->second.detached = detached_.insert(detached_.end(), it->first);
  }
}

void
SessionRegistry::sweep(Clock::time_point now)
{
  const std::lock_guard lock(mutex_);
  // Left in order: the first one still within the ttl ends the sweep.
  while (!detached_.empty() && now - sessions_.at(detached_.front()).last_seen > ttl_) {
    sessions_.erase(detached_.front());
    detached_.pop_front();
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
  if (!detached_.empty()) {
    sessions_.erase(detached_.front());
    detached_.pop_front();
  }
}

} // namespace exai::net
