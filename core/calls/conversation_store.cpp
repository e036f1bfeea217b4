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
            std::size_t bytes = key.size() + 64 + thread.model.size();
            for (const auto& message : thread.messages) {
              bytes += message.role.size() + message.content.size() + 32;
              for (const auto& image : message.images) {
                bytes += image.bytes.size() + image.data_url.size() + 32;
              }
            }
            for (const auto& [path, stamp] : thread.files) {
              bytes += path.size() + sizeof(stamp) + 32;
            }
            if (!thread.state.is_null()) {
              bytes += thread.state.dump().size();
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
                               const ChatMessage& assistant,
                               const TurnInfo& info)
{
  const std::lock_guard lock(mutex_);
  std::string key = id.empty() ? random_hex() : id;
  Conversation thread = threads_.get(key).value_or(Conversation{});
  thread.messages.push_back(user);
  thread.messages.push_back(assistant);
  ++thread.turns;
  if (thread.tool.empty()) {
    thread.tool = info.tool;
  }
  if (!info.model.empty()) {
    thread.provider = info.provider;
    thread.model = info.model;
  }
  for (const auto& file : info.files) {
    thread.files[file.path] = file.stamp;
  }
  const int turns = thread.turns;
  threads_.put(key, std::move(thread));
  return {std::move(key), turns};
}

std::optional<std::string>
ConversationStore::fork(const std::string& id)
{
  const std::lock_guard lock(mutex_);
  auto thread = threads_.get(id);
  if (!thread) {
    return std::nullopt;
  }
  std::string key = random_hex();
  threads_.put(key, std::move(*thread));
  return key;
}

std::string
ConversationStore::put_state(const std::string& id, const std::string& tool, nlohmann::json state)
{
  const std::lock_guard lock(mutex_);
  std::string key = id.empty() ? random_hex() : id;
  Conversation thread = threads_.get(key).value_or(Conversation{});
  if (thread.tool.empty()) {
    thread.tool = tool;
  }
  thread.state = std::move(state);
  threads_.put(key, std::move(thread));
  return key;
}

} // namespace exai::core
