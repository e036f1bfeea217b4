// exai detect-providers: show configured providers, models, base URLs and key presence.

#include "cmd/command.hpp"
#include "core/log.hpp"
#include "core/providers/providers.hpp"
#include "net/upstream/upstream_client.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <future>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace exai::cmd {

namespace {

// Result codes of this command (SPEC §1).
constexpr int kExitNoneConfigured = 1;
constexpr int kExitProbeFailed = 2;

struct DetectOptions {
  bool json = false;
  bool probe = false;
  int timeout_secs = 5;
};

std::string
key_text(const core::ProviderConfig& provider)
{
  if (!provider.key_present()) {
    return "absent";
  }
  return provider.key_variable + " (" + std::to_string(provider.key_length()) + " characters)";
}

std::string
restrictions_text(const core::ProviderConfig& provider)
{
  std::string text;
  if (!provider.enabled) {
    text = provider.disabled_reason;
  }
  if (!provider.restriction.empty()) {
    text += text.empty() ? "" : "; ";
    text += provider.id == core::kKimiProviderId ? "KIMI_ALLOWED_MODELS: " : "GLM_ALLOWED_MODELS: ";
    for (std::size_t i = 0; i < provider.restriction.size(); ++i) {
      text += (i == 0 ? "" : ",") + provider.restriction[i];
    }
  }
  return text.empty() ? "-" : text;
}

nlohmann::json
models_json(const core::ProviderConfig& provider)
{
  auto models = nlohmann::json::array();
  for (const auto* info : provider.models) {
    models.push_back({{"name", info->name},
                      {"aliases", info->aliases},
                      {"context_window", info->context_window},
                      {"max_output_tokens", info->max_output_tokens},
                      {"images", info->capabilities.images},
                      {"function_calling", info->capabilities.function_calling},
                      {"thinking", info->capabilities.thinking}});
  }
  return models;
}

void
print_table(const core::ProviderRegistry& registry,
            const std::map<std::string, net::ProbeResult>& probes)
{
  std::vector<std::vector<std::string>> rows = {
      {"PROVIDER", "AVAILABLE", "KEY", "BASE URL", "MODELS", "RESTRICTIONS"}};
  for (const auto& provider : registry.providers()) {
    rows.push_back({provider.display_name,
                    provider.available() ? "yes" : "no",
                    key_text(provider),
                    provider.base_url,
                    std::to_string(provider.name_count),
                    restrictions_text(provider)});
  }
  std::vector<std::size_t> widths(rows.front().size(), 0);
  for (const auto& row : rows) {
    for (std::size_t i = 0; i < row.size(); ++i) {
      widths[i] = std::max(widths[i], row[i].size());
    }
  }
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) {
        line += std::string(widths[i] - row[i].size() + 2, ' ');
      }
    }
    std::cout << line << "\n";
  }
  std::cout << "\n";
  for (const auto* provider : registry.configured()) {
    std::cout << provider->display_name << " models:";
    for (std::size_t i = 0; i < provider->models.size(); ++i) {
      const auto* info = provider->models[i];
      std::cout << (i == 0 ? " " : ", ") << info->name;
      if (!info->aliases.empty()) {
        std::cout << " (";
        for (std::size_t j = 0; j < info->aliases.size(); ++j) {
          std::cout << (j == 0 ? "" : ", ") << info->aliases[j];
        }
        std::cout << ")";
      }
    }
    std::cout << "\n";
  }
  std::cout << "Default model: " << registry.default_model() << "\n";
  std::cout << registry.summary() << "\n";
  for (const auto& [id, probe] : probes) {
    const auto* provider = registry.find(id);
    std::cout << "Probe " << (provider != nullptr ? provider->display_name : id) << ": "
              << net::to_string(probe.status) << " in " << probe.latency.count() << " ms ("
              << probe.message << ")\n";
  }
}

nlohmann::json
to_json(const core::ProviderRegistry& registry,
        const std::map<std::string, net::ProbeResult>& probes)
{
  auto providers = nlohmann::json::array();
  for (const auto& provider : registry.providers()) {
    nlohmann::json entry = {
        {"id", provider.id},
        {"name", provider.display_name},
        {"available", provider.available()},
        {"key_present", provider.key_present()},
        {"key_length", provider.key_length()},
        {"key_variable",
         provider.key_variable.empty() ? nlohmann::json() : nlohmann::json(provider.key_variable)},
        {"base_url", provider.base_url},
        {"timeout_secs", provider.read_timeout.count()},
        {"model_count", provider.name_count},
        {"models", models_json(provider)},
        {"allowed_models", provider.restriction},
        {"disabled_reason", provider.disabled_reason},
    };
    if (const auto it = probes.find(provider.id); it != probes.end()) {
      entry["probe"] = {{"status", net::to_string(it->second.status)},
                        {"http_status", it->second.http_status},
                        {"latency_ms", it->second.latency.count()},
                        {"message", it->second.message}};
    }
    providers.push_back(std::move(entry));
  }
  return {{"providers", providers},
          {"default_model", registry.default_model()},
          {"summary", registry.summary()},
          {"warnings", registry.warnings()}};
}

int
run_detect_providers(const DetectOptions& options, const GlobalOptions& global)
{
  const auto log = core::log::get("cmd");
  const core::Settings settings = load_settings(global);
  const auto registry = core::ProviderRegistry::build(settings);
  for (const auto& warning : registry.warnings()) {
    log->warn("{}", warning);
  }

  std::map<std::string, net::ProbeResult> probes;
  if (options.probe && registry.any_configured()) {
    net::UpstreamClient client(net::endpoints_from(registry), net::upstream_options_from(settings));
    const auto timeout = std::chrono::milliseconds(options.timeout_secs * 1000L);
    std::vector<std::pair<std::string, std::future<net::ProbeResult>>> pending;
    for (const auto* provider : registry.configured()) {
      pending.emplace_back(provider->id,
                           std::async(std::launch::async, [&client, provider, timeout] {
                             return client.probe(provider->id, timeout);
                           }));
    }
    for (auto& [id, result] : pending) {
      probes.emplace(id, result.get());
    }
  }

  if (options.json) {
    std::cout << to_json(registry, probes).dump(2) << "\n";
  } else {
    print_table(registry, probes);
  }
  std::cout.flush();

  if (!registry.any_configured()) {
    log->warn("no provider configured: set KIMI_API_KEY or GLM_API_KEY");
    return kExitNoneConfigured;
  }
  const bool probe_failed = std::any_of(probes.begin(), probes.end(), [](const auto& entry) {
    return entry.second.status != net::ProbeResult::Status::reachable;
  });
  return probe_failed ? kExitProbeFailed : kExitOk;
}

} // namespace

Command
add_detect_providers(CLI::App& root)
{
  auto options = std::make_shared<DetectOptions>();
  CLI::App* cli = root.add_subcommand(
      "detect-providers", "Show configured providers, models, base URLs and key presence");
  cli->add_flag("--json", options->json, "Print JSON on stdout instead of a table");
  cli->add_flag("--probe",
                options->probe,
                "Send one cheap authenticated request (GET <base>/models) per configured provider");
  cli->add_option("--timeout", options->timeout_secs, "Probe timeout in seconds (1-60)")
      ->capture_default_str()
      ->check(CLI::Range(1, 60));
  return {cli, [options](const GlobalOptions& global) {
            return run_detect_providers(*options, global);
          }};
}

} // namespace exai::cmd
