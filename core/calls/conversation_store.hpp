#pragma once

#include "core/calls/shared_store.hpp"
#include "core/files/file_bundle.hpp"
#include "core/providers/chat.hpp"
#include "core/util/ttl_cache.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace exai::core {

// One multi-turn conversation: its messages so far (without system prompt).
struct Conversation {
  std::vector<ChatMessage> messages;
  int turns = 0;        // completed user/assistant exchanges
  std::string tool;     // the tool that started it
  std::string provider; // of the last turn: a continuation without a model keeps it
  std::string model;
  // Files embedded in earlier turns, by canonical path: sent again only when
  // they changed.
  std::map<std::string, FileStamp, std::less<>> files;
  nlohmann::json state; // tool-specific state (workflow steps), null if none
  // Bumped by every change: of two copies (this daemon's, the shared store's)
  // the higher one is newer.
  std::uint64_t version = 0;
};

// What one turn adds besides its two messages.
struct TurnInfo {
  std::string tool;
  std::string provider;
  std::string model;
  std::vector<EmbeddedFile> files;
};

// Conversation threads by continuation_id. Bounded by a TTL (renewed on each
// turn), a maximum count and a byte budget, so abandoned threads disappear on
// their own. Thread-safe.
class ConversationStore {
public:
  using Clock = std::chrono::steady_clock;

  // Bounded by `ttl` (renewed on each turn), `max_conversations` and
  // `max_bytes` (message text); the oldest threads go first.
  ConversationStore(std::chrono::milliseconds ttl,
                    std::size_t max_conversations,
                    std::size_t max_bytes,
                    int max_turns,
                    TtlCache<Conversation>::Now now = Clock::now);

  // The conversation `id`, or nullopt when unknown or expired.
  std::optional<Conversation> find(const std::string& id);

  // Records one exchange. Creates the conversation under a new random id
  // when `id` is empty. Returns the id and the turns now used.
  std::pair<std::string, int> record_turn(const std::string& id,
                                          const ChatMessage& user,
                                          const ChatMessage& assistant,
                                          const TurnInfo& info = {});

  // A copy of thread `id` under a new id (so two callers that share one
  // answer do not share one thread), or nullopt when `id` is unknown.
  std::optional<std::string> fork(const std::string& id);

  // Replaces the tool state of thread `id`, creating the thread under a new
  // id when `id` is empty. Returns the id.
  std::string put_state(const std::string& id, const std::string& tool, nlohmann::json state);

  // Keeps every thread in `shared` too (under `prefix` + id, with the same
  // TTL) and reads it from there first, so another daemon, or this one after
  // a restart, continues it. Set before use; `shared` outlives the store.
  void share(SharedStore* shared, std::string prefix);
  // Writes to the shared store go through `write` (key, value, ttl) instead
  // of a round trip of their own on the thread that changed the thread (off
  // a call's critical path). Reads then make up for a write still in
  // flight: the newer copy wins, and a thread missing everywhere is read
  // again a few times within ~40 ms before it counts as unknown.
  using WriteBehind =
      std::function<void(std::string key, std::string value, std::chrono::milliseconds ttl)>;
  void write_behind(WriteBehind write) { write_behind_ = std::move(write); }

  int max_turns() const noexcept { return max_turns_; }
  // Whether threads are kept in a shared store (finding and recording one
  // may then wait on the network).
  bool shared() const noexcept { return shared_ != nullptr; }
  std::size_t size() const { return threads_.size(); }
  std::size_t bytes() const { return threads_.bytes(); }
  // Drops expired threads now; returns the bytes freed.
  std::size_t purge() { return threads_.purge(); }
  // Bytes dropped since the last call (see TtlCache::take_freed).
  std::size_t take_freed() { return threads_.take_freed(); }

private:
  // The shared copy of thread `id` (nullopt: absent or no shared store).
  std::optional<Conversation> shared_copy(const std::string& id);
  // The newer of the shared copy and this daemon's (mutex_ not held).
  std::optional<Conversation> newest(const std::string& id, std::optional<Conversation> shared);
  // Writes thread `id` to the shared store, if any.
  void publish(const std::string& id, const Conversation& thread);

  const int max_turns_;
  const std::chrono::milliseconds ttl_;
  SharedStore* shared_ = nullptr;
  WriteBehind write_behind_;
  std::string prefix_;
  std::mutex mutex_; // makes find-modify-put of one thread atomic
  TtlCache<Conversation> threads_;
};

} // namespace exai::core
