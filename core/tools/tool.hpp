#pragma once

#include "core/calls/call_result.hpp"
#include "core/error.hpp"
#include "core/providers/chat.hpp"
#include "core/providers/providers.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace exai::core {

class ConversationStore;

// What a call needs before it runs: which provider's capacity it takes
// (empty = none), which model, and which conversation it belongs to.
struct CallPlan {
  std::string provider;
  std::string model;
  std::string conversation_id;
};

// Everything a running tool may use. Borrowed references, valid for the call.
struct ToolContext {
  const nlohmann::json& arguments;
  const CallPlan& plan;
  std::stop_token stop; // requested at the call's deadline, on cancel and on shutdown
  // The call's deadline (the engine owns it); upstream attempts derive theirs from it.
  std::chrono::steady_clock::time_point deadline;
  ChatBackend& chat;
  const ProviderRegistry& providers;
  ConversationStore& conversations;
  // A snapshot of the daemon (capacity, counters, uptime) for `status`.
  std::function<nlohmann::json()> daemon_status;
  // Sends a progress note to every caller of this call (never blocks).
  std::function<void(std::string_view note)> progress;
};

// One tool. Implementations are stateless (state lives in the context), so
// one instance serves every call concurrently. Adding a tool = one file in
// core/tools/ + one line in register_builtin_tools().
class Tool {
public:
  Tool() = default;
  Tool(const Tool&) = delete;
  Tool& operator=(const Tool&) = delete;
  Tool(Tool&&) = delete;
  Tool& operator=(Tool&&) = delete;
  virtual ~Tool() = default;

  virtual std::string_view name() const = 0;
  virtual std::string_view description() const = 0;
  virtual nlohmann::json input_schema() const = 0;

  // Validates `arguments` and decides provider, model and conversation.
  // Throws Error(validation_error) for bad arguments and
  // Error(provider_unavailable) when the model's provider is not configured.
  virtual CallPlan plan(const nlohmann::json& arguments, const ProviderRegistry& providers) const;

  // Runs the call. Must return promptly once `context.stop` is requested.
  virtual ToolResult run(ToolContext& context) const = 0;

  // May an identical call share this one's execution or cached result?
  // False for tools whose answer depends on when they run (status).
  virtual bool reusable() const { return true; }
};

// The output envelope of SPEC §2 as JSON text: {"status","content",
// "content_type","metadata","continuation_offer"}. `metadata` gets tool_name.
std::string envelope(std::string_view tool_name,
                     std::string_view content,
                     std::string_view content_type = "text",
                     nlohmann::json metadata = nlohmann::json::object(),
                     nlohmann::json continuation_offer = nullptr);

// Argument readers for plan()/run(): nullopt when absent or null; throw
// Error(validation_error) naming the argument when it has the wrong type or
// is out of range.
std::optional<std::string> string_arg(const nlohmann::json& arguments, std::string_view name);
std::optional<double>
number_arg(const nlohmann::json& arguments, std::string_view name, double min, double max);
std::optional<int>
int_arg(const nlohmann::json& arguments, std::string_view name, int min, int max);

} // namespace exai::core
