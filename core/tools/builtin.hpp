#pragma once

#include "core/tools/tool.hpp"

#include <memory>

// One factory per built-in tool, each in its own file under core/tools/.
namespace exai::core::tools {

std::unique_ptr<Tool> make_challenge();
std::unique_ptr<Tool> make_chat();
std::unique_ptr<Tool> make_consensus();
std::unique_ptr<Tool> make_listmodels();
std::unique_ptr<Tool> make_planner();
std::unique_ptr<Tool> make_status();
std::unique_ptr<Tool> make_version();

// Diagnostics (core/tools/diagnostics/).
std::unique_ptr<Tool> make_activity();
std::unique_ptr<Tool> make_health();
std::unique_ptr<Tool> make_provider_capabilities();
std::unique_ptr<Tool> make_self_check();
std::unique_ptr<Tool> make_toolcall_log_tail();

// Provider-native tools (core/tools/provider/).
std::unique_ptr<Tool> make_glm_payload_preview();
std::unique_ptr<Tool> make_glm_upload_file();
std::unique_ptr<Tool> make_glm_web_search();
std::unique_ptr<Tool> make_kimi_capture_headers();
std::unique_ptr<Tool> make_kimi_chat_with_files();
std::unique_ptr<Tool> make_kimi_chat_with_tools();
std::unique_ptr<Tool> make_kimi_intent_analysis();
std::unique_ptr<Tool> make_kimi_manage_files();
std::unique_ptr<Tool> make_kimi_upload_files();

} // namespace exai::core::tools
