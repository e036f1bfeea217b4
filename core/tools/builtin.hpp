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

} // namespace exai::core::tools
