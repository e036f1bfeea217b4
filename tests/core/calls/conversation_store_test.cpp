#include "core/calls/conversation_store.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <map>
#include <mutex>
#include <vector>

using namespace exai::core;
using namespace std::chrono_literals;

namespace {

// Redis as a map; `down` makes it read as empty and drop writes.
class MapStore final : public SharedStore {
public:
  std::optional<std::string> get(const std::string& key) override
  {
    const std::lock_guard lock(mutex_);
    ++trips_;
    if (down) {
      return std::nullopt;
    }
    const auto it = values_.find(key);
    return it == values_.end() ? std::nullopt : std::optional<std::string>(it->second);
  }
  void put(const std::string& key, const std::string& value, std::chrono::milliseconds ttl) override
  {
    const std::lock_guard lock(mutex_);
    ++trips_;
    if (!down) {
      values_[key] = value;
      ttls_[key] = ttl;
    }
  }
  std::uint64_t round_trips() const noexcept override { return trips_; }
  std::chrono::milliseconds ttl_of(const std::string& key) { return ttls_.at(key); }
  bool down = false;

private:
  std::mutex mutex_;
  std::map<std::string, std::string> values_;
  std::map<std::string, std::chrono::milliseconds> ttls_;
  std::uint64_t trips_ = 0;
};

} // namespace

TEST_CASE("a thread recorded by one daemon is continued by another through the shared store",
          "[core][calls][conversation]")
{
  MapStore shared;
  ConversationStore a(3h, 100, 1 << 20, 20);
  a.share(&shared, "x:conv:");
  ConversationStore b(3h, 100, 1 << 20, 20);
  b.share(&shared, "x:conv:");
  TurnInfo info;
  info.tool = "chat";
  info.provider = "glm";
  info.model = "glm-4.5";
  info.files.push_back(EmbeddedFile{"/src/a.cpp", 10, 100, FileStamp{42, 7}});
  const auto [id, turns] =
      a.record_turn("", ChatMessage("user", "hello"), ChatMessage("assistant", "hi"), info);
  CHECK(turns == 1);
  CHECK(shared.ttl_of("x:conv:" + id) == 3h);
  const auto found = b.find(id);
  REQUIRE(found);
  CHECK(found->messages.size() == 2);
  CHECK(found->messages[0].content == "hello");
  CHECK(found->model == "glm-4.5");
  CHECK(found->provider == "glm");
  CHECK(found->tool == "chat");
  CHECK(found->files.at("/src/a.cpp") == FileStamp{42, 7});
  const auto [same, second] =
      b.record_turn(id, ChatMessage("user", "again"), ChatMessage("assistant", "sure"), {});
  CHECK(same == id);
  CHECK(second == 2);
  // A reads B's turn, not its own stale copy.
  const auto back = a.find(id);
  REQUIRE(back);
  CHECK(back->turns == 2);
  CHECK(back->messages.back().content == "sure");
  // Workflow state travels too.
  const std::string state_id = b.put_state("", "planner", {{"step", 3}});
  const auto with_state = a.find(state_id);
  REQUIRE(with_state);
  CHECK(with_state->state.at("step") == 3);
  // A fork is shared under its new id.
  const auto fork = a.fork(id);
  REQUIRE(fork);
  CHECK(b.find(*fork)->turns == 2);
}

TEST_CASE("with the shared store unreachable the local copy answers", "[core][calls][conversation]")
{
  MapStore shared;
  ConversationStore a(3h, 100, 1 << 20, 20);
  a.share(&shared, "x:conv:");
  shared.down = true;
  const auto [id, turns] =
      a.record_turn("", ChatMessage("user", "u"), ChatMessage("assistant", "a"));
  CHECK(turns == 1);
  const auto found = a.find(id);
  REQUIRE(found);
  CHECK(found->messages.size() == 2);
}

TEST_CASE("with write-behind a turn costs no round trip and the newer copy wins",
          "[core][calls][conversation]")
{
  MapStore shared;
  std::vector<std::pair<std::string, std::string>> queued; // written later, in order
  const auto queue = [&](std::string key, std::string value, std::chrono::milliseconds ttl) {
    CHECK(ttl == 3h);
    queued.emplace_back(std::move(key), std::move(value));
  };
  const auto land = [&] {
    for (const auto& [key, value] : queued) {
      shared.put(key, value, 3h);
    }
    queued.clear();
  };
  ConversationStore a(3h, 100, 1 << 20, 20);
  a.share(&shared, "x:conv:");
  a.write_behind(queue);
  ConversationStore b(3h, 100, 1 << 20, 20);
  b.share(&shared, "x:conv:");
  b.write_behind(queue);

  const auto [id, turns] =
      a.record_turn("", ChatMessage("user", "one"), ChatMessage("assistant", "1"));
  CHECK(turns == 1);
  CHECK(shared.round_trips() == 0); // a new thread: no read, and the write is queued
  REQUIRE(queued.size() == 1);
  land();
  (void)a.record_turn(id, ChatMessage("user", "two"), ChatMessage("assistant", "2"));
  REQUIRE(queued.size() == 1); // turn 2 not in the store yet
  // A's own copy is newer than the store's: its next turn builds on turn 2.
  const auto own = a.find(id);
  REQUIRE(own);
  CHECK(own->turns == 2);
  CHECK(own->messages.back().content == "2");
  land();
  // B sees turn 2 once it landed, and its turn 3 beats A's older copy.
  (void)b.record_turn(id, ChatMessage("user", "three"), ChatMessage("assistant", "3"));
  land();
  const auto back = a.find(id);
  REQUIRE(back);
  CHECK(back->turns == 3);
  CHECK(back->messages.size() == 6);
}

namespace {

// A store whose value shows up only from the `from`-th read on: a write
// another daemon queued a moment ago.
class LateStore final : public SharedStore {
public:
  LateStore(std::string key, std::string value, int from)
      : key_(std::move(key))
      , value_(std::move(value))
      , from_(from)
  {
  }
  std::optional<std::string> get(const std::string& key) override
  {
    ++reads;
    if (key == key_ && reads >= from_) {
      return value_;
    }
    return std::nullopt;
  }
  void put(const std::string&, const std::string&, std::chrono::milliseconds) override {}
  std::uint64_t round_trips() const noexcept override { return static_cast<std::uint64_t>(reads); }
  std::atomic<int> reads{0};

private:
  std::string key_;
  std::string value_;
  int from_;
};

} // namespace

TEST_CASE("a thread missing everywhere is read again a few times before it is unknown",
          "[core][calls][conversation]")
{
  // What daemon A wrote: a thread from a store that shares with a map.
  MapStore origin;
  ConversationStore a(3h, 100, 1 << 20, 20);
  a.share(&origin, "x:conv:");
  const auto [id, turns] =
      a.record_turn("", ChatMessage("user", "hello"), ChatMessage("assistant", "hi"));
  REQUIRE(origin.get("x:conv:" + id));
  const std::string written = *origin.get("x:conv:" + id);

  LateStore late("x:conv:" + id, written, 3);
  ConversationStore b(3h, 100, 1 << 20, 20);
  b.share(&late, "x:conv:");
  b.write_behind([](std::string, std::string, std::chrono::milliseconds) {});
  const auto found = b.find(id);
  REQUIRE(found);
  CHECK(found->messages.back().content == "hi");
  CHECK(late.reads == 3);

  const auto started = std::chrono::steady_clock::now();
  late.reads = 0;
  CHECK_FALSE(b.find("0123456789abcdef0123456789abcdef"));
  CHECK(late.reads == 4); // the first read and three more
  CHECK(std::chrono::steady_clock::now() - started < 2s);
}
