#pragma once

#include "core/calls/call_result.hpp"
#include "core/capacity/capacity.hpp"
#include "core/error.hpp"
#include "core/providers/chat.hpp"
#include "core/providers/model_routing.hpp"
#include "core/providers/providers.hpp"
#include "core/tools/tool_spec.hpp"
#include "core/util/interface.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace exai::core {

class ConversationStore;
class FileRoots;
struct ModelStep;
class ProviderHttp;
struct DaemonConfig;
struct DaemonView;

// What a call needs before it runs: which provider's capacity it takes
// (empty = none), which model, and which conversation it belongs to.
struct CallPlan {
  std::string provider;
  std::string model;
  std::string conversation_id;
  // Model selection, for metadata and the debug log.
  bool automatic = false;           // chosen by auto: may fall back
  std::optional<ModelRef> fallback; // the other provider's equivalent (auto only)
  std::string model_reason;         // why this model
  std::string fallback_from;        // set once the call moved: the model it left
  std::string fallback_reason;      // and why
};

// What a tool's plan() may read. Runs on the thread that received the call
// (often an event loop): no I/O, no waiting.
struct PlanInput {
  const nlohmann::json& arguments; // already checked against the tool's schema
  const ProviderRegistry& providers;
  ConversationStore& conversations;
};

// Everything a running tool may use. Borrowed references, valid for the call.
struct ToolContext {
  const nlohmann::json& arguments;
  const CallPlan& plan; // the engine updates it when the call falls back
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
  const DaemonConfig& config;
  const FileRoots& file_roots;
  // For an auto call: moves it to plan.fallback once — gives back this
  // provider's capacity and takes the other's within the call's deadline —
  // and updates `plan`. False when there is no fallback, it was used, or the
  // other provider's capacity is not free in time.
  std::function<bool(std::string_view reason)> fall_back;
  // One more permit of a provider, for a tool that sends several upstream
  // requests at once; the call's own permit covers one request on
  // plan.provider. Waits until `deadline` at most (in the past: tries once);
  // nullopt when the provider stayed full or the call was stopped.
  std::function<std::optional<Permit>(const std::string& provider,
                                      std::chrono::steady_clock::time_point deadline)>
      extra_permit;
  // Provider endpoints beyond chat (Files API, web search); null where the
  // daemon has none.
  ProviderHttp* http = nullptr;
  // What the diagnostic tools read about the daemon; null outside one.
  const DaemonView* daemon = nullptr;
};

// One tool. Implementations are stateless (state lives in the context), so
// one instance serves every call concurrently. Adding a tool = one file in
// core/tools/ + one line in register_builtin_tools().
class Tool : public Interface {
public:
  // What the tool is; its schemas are generated from this.
  virtual const ToolSpec& spec() const = 0;
  std::string_view name() const { return spec().name; }

  // Decides provider, model and conversation from arguments that passed the
  // schema. The default routes by spec().model_class (see plan_model());
  // tools that call no model take no provider. Throws Error(validation_error)
  // for arguments the schema cannot express and Error(provider_unavailable)
  // when no provider can serve the call.
  virtual CallPlan plan(const PlanInput& input) const;

  // Runs the call. Must return promptly once `context.stop` is requested.
  virtual ToolResult run(ToolContext& context) const = 0;

  // run() for a call the engine can carry without a call thread (on an
  // event loop): the quick part — checks, and what the model request needs —
  // done now, without blocking; the engine makes the request and finishes
  // the step when the answer is in. Null, having done nothing, when this
  // call must run on a call thread (files or images to read, a shared store
  // to ask): the default. Throws like run().
  virtual std::unique_ptr<ModelStep> model_step(ToolContext& context) const;

  // May an identical call share this one's execution or cached result?
  // False for tools whose answer depends on when they run (status).
  virtual bool reusable() const { return true; }
};

// Whether a tool's answer may be shared by an identical call (Tool::reusable).
enum class Reuse : bool { no = false, yes = true };

// A tool that calls no model and answers with one JSON document built by
// `report` (content_type json). Diagnostics answer about this moment, so most
// pass Reuse::no.
std::unique_ptr<Tool>
make_report_tool(ToolSpec spec, Reuse reuse, std::function<nlohmann::json(ToolContext&)> report);

// The output envelope of SPEC §2 as JSON text: {"status","content",
// "content_type","metadata","continuation_offer"}. `metadata` gets tool_name.
std::string envelope(std::string_view tool_name,
                     std::string_view content,
                     std::string_view content_type = "text",
                     nlohmann::json metadata = nlohmann::json::object(),
                     nlohmann::json continuation_offer = nullptr);

// The model plan of a model-calling tool: `model` (or DEFAULT_MODEL, or the
// model of the conversation being continued) routed for `model_class`, with
// images asking for vision and thinking_mode high/max for a thinking model.
CallPlan plan_model(const PlanInput& input, ModelClass model_class);

// Argument readers for plan()/run(): nullopt when absent or null; throw
// Error(validation_error) naming the argument when it has the wrong type or
// is out of range.
std::optional<std::string> string_arg(const nlohmann::json& arguments, std::string_view name);
std::optional<double>
number_arg(const nlohmann::json& arguments, std::string_view name, double min, double max);
std::optional<int>
int_arg(const nlohmann::json& arguments, std::string_view name, int min, int max);
std::optional<bool> bool_arg(const nlohmann::json& arguments, std::string_view name);
// An array of strings; empty when absent.
std::vector<std::string> strings_arg(const nlohmann::json& arguments, std::string_view name);

} // namespace exai::core
