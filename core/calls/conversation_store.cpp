#include "core/calls/conversation_store.hpp"

#include "core/util/random_id.hpp"

namespace exai::core {

ConversationStore::ConversationStore(std::chrono::milliseconds ttl,
                                     std::size_t max_conversations,
                                     std::size_t max_bytes,
                                     int max_turns,
                                     TtlCache<Conversation>::Now now)
    : max_turns_(max_turns)
    , threads_(
          ttl,
          max_conversations,
          max_bytes,
          [](const std::string& key, const Conversation& thread) {
            std::size_t bytes = key.size() + 64;
            for (const auto& message : thread.messages) {
              bytes += message.role.size() + message.content.size() + 32;
            }
            return bytes;
          },
          std::move(now))
{
}

std::optional<Conversation>
ConversationStore::find(const std::string& id)
{
  return threads_.get(id);
}

std::pair<std::string, int>
ConversationStore::record_turn(const std::string& id,
                               const ChatMessage& user,
                               const ChatMessage& assistant)
{
  const std::lock_guard lock(mutex_);
  std::string key = id.empty() ? random_hex() : id;
  Conversation thread = threads_.get(key).value_or(Conversation{});
  thread.messages.push_back(user);
  thread.messages.push_back(assistant);
  ++thread.turns;
  const int turns = thread.turns;
  threads_.put(key, std::move(thread));
  return {std::move(key), turns};
}

} // namespace exai::core
