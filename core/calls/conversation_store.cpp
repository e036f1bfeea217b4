#include "core/calls/conversation_store.hpp"

#include "core/util/random_id.hpp"

#include <nlohmann/json.hpp>

#include <thread>

namespace exai::core {

ConversationStore::ConversationStore(std::chrono::milliseconds ttl,
                                     std::size_t max_conversations,
                                     std::size_t max_bytes,
                                     int max_turns,
                                     TtlCache<Conversation>::Now now)
    : max_turns_(max_turns)
    , ttl_(ttl)
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

namespace {

nlohmann::json
to_json(const Conversation& thread)
{
  nlohmann::json messages = nlohmann::json::array();
  for (const auto& m : thread.messages) {
    nlohmann::json message = {{"role", m.role}, {"content", m.content}};
    if (!m.tool_calls.empty()) {
      nlohmann::json calls = nlohmann::json::array();
      for (const auto& call : m.tool_calls) {
        calls.push_back({{"id", call.id},
                         {"type", call.type},
                         {"name", call.name},
                         {"arguments", call.arguments}});
      }
      message["tool_calls"] = std::move(calls);
    }
    if (!m.tool_call_id.empty()) {
      message["tool_call_id"] = m.tool_call_id;
    }
    if (!m.name.empty()) {
      message["name"] = m.name;
    }
    if (!m.images.empty()) {
      nlohmann::json images = nlohmann::json::array();
      for (const auto& image : m.images) {
        images.push_back({{"mime", image.mime}, {"data_url", image.data_url}});
      }
      message["images"] = std::move(images); // file bytes stay out, as in history
    }
    messages.push_back(std::move(message));
  }
  nlohmann::json files = nlohmann::json::object();
  for (const auto& [path, stamp] : thread.files) {
    files[path] = {stamp.size, stamp.mtime_ns};
  }
  return {{"messages", std::move(messages)},
          {"turns", thread.turns},
          {"tool", thread.tool},
          {"provider", thread.provider},
          {"model", thread.model},
          {"files", std::move(files)},
          {"state", thread.state},
          {"version", thread.version}};
}

std::optional<Conversation>
from_json(const std::string& text)
{
  const auto doc = nlohmann::json::parse(text, nullptr, false);
  if (!doc.is_object()) {
    return std::nullopt;
  }
  try {
    Conversation thread;
    for (const auto& m : doc.at("messages")) {
      ChatMessage message(m.at("role").get<std::string>(), m.at("content").get<std::string>());
      for (const auto& call : m.value("tool_calls", nlohmann::json::array())) {
        message.tool_calls.push_back({call.at("id").get<std::string>(),
                                      call.at("type").get<std::string>(),
                                      call.at("name").get<std::string>(),
                                      call.at("arguments").get<std::string>()});
      }
      message.tool_call_id = m.value("tool_call_id", "");
      message.name = m.value("name", "");
      for (const auto& image : m.value("images", nlohmann::json::array())) {
        ChatImage img;
        img.mime = image.at("mime").get<std::string>();
        img.data_url = image.at("data_url").get<std::string>();
        message.images.push_back(std::move(img));
      }
      thread.messages.push_back(std::move(message));
    }
    thread.turns = doc.at("turns").get<int>();
    thread.tool = doc.at("tool").get<std::string>();
    thread.provider = doc.at("provider").get<std::string>();
    thread.model = doc.at("model").get<std::string>();
    for (const auto& [path, stamp] : doc.at("files").items()) {
      thread.files[path] =
          FileStamp{stamp.at(0).get<std::uint64_t>(), stamp.at(1).get<std::int64_t>()};
    }
    thread.state = doc.at("state");
    thread.version = doc.value("version", std::uint64_t{0});
    return thread;
  } catch (const nlohmann::json::exception&) {
    return std::nullopt; // not ours, or from an incompatible version: ignored
  }
}

// Whether the shared copy of a thread is the one to use: ours may be newer,
// our own write still on its way to the store. The shared one on a tie.
bool
shared_wins(const std::optional<Conversation>& shared, const std::optional<Conversation>& local)
{
  return shared && !(local && local->version > shared->version);
}

// The newer of two copies of one thread.
std::optional<Conversation>
newer(std::optional<Conversation> shared, std::optional<Conversation> local)
{
  return shared_wins(shared, local) ? std::move(shared) : std::move(local);
}

} // namespace

void
ConversationStore::share(SharedStore* shared, std::string prefix)
{
  shared_ = shared;
  prefix_ = std::move(prefix);
}

std::optional<Conversation>
ConversationStore::shared_copy(const std::string& id)
{
  if (shared_ == nullptr || id.empty()) {
    return std::nullopt;
  }
  std::string key = prefix_;
  key.append(id);
  if (auto text = get_or_nothing(*shared_, key)) {
    return from_json(*text);
  }
  return std::nullopt;
}

void
ConversationStore::publish(const std::string& id, const Conversation& thread)
{
  if (shared_ == nullptr) {
    return;
  }
  std::string key = prefix_;
  key.append(id);
  if (write_behind_) {
    write_behind_(std::move(key), to_json(thread).dump(), ttl_);
  } else {
    shared_->put(key, to_json(thread).dump(), ttl_);
  }
}

std::optional<Conversation>
ConversationStore::newest(const std::string& id, std::optional<Conversation> shared)
{
  const std::lock_guard lock(mutex_);
  auto local = threads_.get(id);
  if (!shared_wins(shared, local)) {
    return local;
  }
  threads_.put(id, *shared);
  return shared;
}

std::optional<Conversation>
ConversationStore::find(const std::string& id)
{
  auto thread = newest(id, shared_copy(id));
  if (!thread && write_behind_ && shared_ != nullptr && !id.empty()) {
    // Another daemon may have answered the previous turn a moment ago, its
    // write still queued behind its releases.
    for (const auto wait : {std::chrono::milliseconds(2),
                            std::chrono::milliseconds(8),
                            std::chrono::milliseconds(30)}) {
      std::this_thread::sleep_for(wait);
      thread = newest(id, shared_copy(id));
      if (thread) {
        break;
      }
    }
  }
  return thread;
}

std::pair<std::string, int>
ConversationStore::record_turn(const std::string& id,
                               const ChatMessage& user,
                               const ChatMessage& assistant,
                               const TurnInfo& info)
{
  auto shared = shared_copy(id); // before the lock: no I/O under it
  std::unique_lock lock(mutex_);
  std::string key = id.empty() ? random_hex() : id;
  Conversation thread = newer(std::move(shared), threads_.get(key)).value_or(Conversation{});
  ++thread.version;
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
  threads_.put(key, thread);
  lock.unlock();
  publish(key, thread);
  return {std::move(key), turns};
}

std::optional<std::string>
ConversationStore::fork(const std::string& id)
{
  auto shared = shared_copy(id);
  std::unique_lock lock(mutex_);
  auto thread = newer(std::move(shared), threads_.get(id));
  if (!thread) {
    return std::nullopt;
  }
  std::string key = random_hex();
  threads_.put(key, *thread);
  lock.unlock();
  publish(key, *thread);
  return key;
}

std::string
ConversationStore::put_state(const std::string& id, const std::string& tool, nlohmann::json state)
{
  auto shared = shared_copy(id);
  std::unique_lock lock(mutex_);
  std::string key = id.empty() ? random_hex() : id;
  Conversation thread = newer(std::move(shared), threads_.get(key)).value_or(Conversation{});
  ++thread.version;
  if (thread.tool.empty()) {
    thread.tool = tool;
  }
  thread.state = std::move(state);
  threads_.put(key, thread);
  lock.unlock();
  publish(key, thread);
  return key;
}

} // namespace exai::core
