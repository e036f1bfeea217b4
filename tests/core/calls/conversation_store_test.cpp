#include "core/calls/conversation_store.hpp"

#include <catch2/catch.hpp>

#include <map>
#include <mutex>

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
