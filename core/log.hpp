#pragma once

#include <spdlog/spdlog.h>

#include <memory>
#include <string>
#include <string_view>

namespace exai::core::log {

enum class Format { text, json };

// Creates the shared stderr sink and the "core", "net" and "cmd" loggers
// (which also feed the in-memory activity log), the "activity" logger (the
// activity log only), and applies SPDLOG_LEVEL overrides. Call once from main after parsing
// options.
void init(spdlog::level::level_enum level, Format format = Format::text);

// The named logger. Before init() (unit tests) it is a silent logger, so no
// test needs logging set up. Never returns null.
std::shared_ptr<spdlog::logger> get(const std::string& name);

// "sk-abcdef…" -> "<redacted len=40>". Use for anything that may hold a secret.
std::string redact(std::string_view secret);

} // namespace exai::core::log
