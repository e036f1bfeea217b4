#pragma once

// What the workflow tool tests share: tools driven as the call engine drives
// them (schema check, plan, run) against a chat backend that records every
// request, with file roots in a scratch directory.

#include "core/calls/conversation_store.hpp"
#include "core/capacity/capacity.hpp"
#include "core/config/config.hpp"
#include "core/files/file_roots.hpp"
#include "core/tools/argument_check.hpp"
#include "core/tools/tool_registry.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/workflow_step.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace exai::core::workflow_test {

using nlohmann::json;

// Records every request; answers "expert says: ..." or fails when told to.
class RecordingChat final : public ChatBackend {
public:
  ChatOutcome
  complete(std::string_view provider, const ChatRequest& request, std::stop_token) override
  {
    std::unique_lock lock(mutex);
    requests.push_back(request);
    providers.emplace_back(provider);
    ++in_flight;
    peak = std::max(peak, in_flight);
    int& here = in_flight_by_provider[std::string(provider)];
    ++here;
    peak_by_provider[std::string(provider)] =
        std::max(peak_by_provider[std::string(provider)], here);
    changed.notify_all();
    // A rendezvous: stay in flight until `gather` requests are, so that
    // requests sent at once are seen at once (the deadline only ends a
    // rendezvous that can never happen, e.g. a sequential caller).
    (void)changed.wait_until(lock, std::chrono::steady_clock::now() + std::chrono::seconds(2), [&] {
      return in_flight >= gather || gathered;
    });
    gathered = gathered || in_flight >= gather;
    --in_flight;
    --in_flight_by_provider[std::string(provider)];
    if (fail) {
      return ChatFailure{Errc::provider_error, "upstream said 500", {{"status", 500}}};
    }
    ChatReply reply;
    reply.content = "expert says: looks fine";
    reply.model = request.model;
    reply.finish_reason = "stop";
    reply.usage = json::object();
    return reply;
  }
  std::string circuit_state(std::string_view) const override { return "closed"; }

  std::mutex mutex;
  std::condition_variable changed;
  std::vector<ChatRequest> requests;
  std::vector<std::string> providers;
  bool fail = false;
  int gather = 1; // see complete()
  bool gathered = false;
  int in_flight = 0;
  int peak = 0; // most requests in flight at once
  std::map<std::string, int> in_flight_by_provider;
  std::map<std::string, int> peak_by_provider;
};

// What a call returned: the reply envelope, or the error (code, details).
struct Outcome {
  json reply;
  std::optional<Errc> error;
  json details;
  CallPlan plan;
};

struct Bench {
  Bench()
      : config(load_daemon_config(Settings({}, {{"EXAI_FILE_ROOTS", dir.path()}}, {})))
      , providers(ProviderRegistry::build(
            Settings({}, {{"KIMI_API_KEY", "kimi-test-key"}, {"GLM_API_KEY", "glm-test-key"}}, {})))
      , conversations(std::chrono::hours(1), 100, 1 << 24, 20)
      , roots({dir.path()})
  {
  }

  // Schema check, plan and run, as the call engine does them.
  Outcome call(const std::string& tool_name, const json& args)
  {
    Outcome out;
    const Tool* tool = process_tools().find(tool_name);
    REQUIRE(tool != nullptr);
    try {
      check_arguments(tool_name, input_schema(tool->spec(), providers), args);
      out.plan = tool->plan(PlanInput{args, providers, conversations});
      // The call's own provider permit, as the engine takes it.
      std::optional<Permit> own;
      if (!out.plan.provider.empty()) {
        own = limiter(out.plan.provider).try_acquire();
        REQUIRE(own);
      }
      std::vector<std::string> notes;
      ToolContext context{
          args,
          out.plan,
          {},
          std::chrono::steady_clock::now() + std::chrono::seconds(10),
          chat,
          providers,
          conversations,
          [] { return json::object(); },
          [this](std::string_view note) { progress.emplace_back(note); },
          config,
          roots,
          [](std::string_view) { return false; },
          [this](const std::string& provider, std::chrono::steady_clock::time_point until) {
            return limiter(provider).acquire_until(until, {});
          }};
      ToolResult result = tool->run(context);
      if (auto* failure = std::get_if<ToolFailure>(&result)) {
        out.error = failure->code;
        out.details = failure->details;
      } else {
        out.reply = json::parse(std::get<ToolSuccess>(result).outputs.at(0));
      }
    } catch (const Error& e) {
      out.error = e.code();
      out.details = e.details();
    }
    return out;
  }

  // Each provider's capacity (8 unless a test sets it before the first call).
  CapacityLimiter& limiter(const std::string& provider)
  {
    auto& slot = limiters[provider];
    if (!slot) {
      const auto it = capacities.find(provider);
      slot = std::make_unique<CapacityLimiter>(provider, it != capacities.end() ? it->second : 8);
    }
    return *slot;
  }

  std::string file(const std::string& name, const std::string& text) const
  {
    const auto path = std::filesystem::path(dir.path()) / name;
    std::ofstream(path) << text;
    return path.string();
  }

  exai::test::TempDir dir;
  DaemonConfig config;
  ProviderRegistry providers;
  ConversationStore conversations;
  FileRoots roots;
  RecordingChat chat;
  std::vector<std::string> progress;
  std::map<std::string, std::size_t> capacities; // provider -> capacity
  std::map<std::string, std::unique_ptr<CapacityLimiter>> limiters;
};

using exai::test::plan_step;
using exai::test::step;

inline std::string
field_of(const Outcome& out)
{
  return out.details.value("field", "");
}

// The field a refused call names, when it was refused as invalid
// (validation_error); "" for any other outcome.
inline std::string
invalid_field(const Outcome& out)
{
  return out.error == Errc::validation_error ? field_of(out) : std::string();
}

} // namespace exai::core::workflow_test
