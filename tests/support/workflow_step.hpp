#pragma once

// The arguments of one workflow tool step (analyze, codereview, planner, ...),
// shared by the in-process workflow tests and the end-to-end ones. Header-only
// so that core tests, which link no test support library, can use it.

#include <nlohmann/json.hpp>

#include <string>

namespace exai::test {

// Step `number` of `total`; `more` is next_step_required. `extra` adds or
// replaces fields.
inline nlohmann::json
step(int number,
     int total,
     bool more,
     const std::string& findings,
     nlohmann::json extra = nlohmann::json::object())
{
  nlohmann::json args = {{"step", "step " + std::to_string(number) + " of the task"},
                         {"step_number", number},
                         {"total_steps", total},
                         {"next_step_required", more},
                         {"findings", findings}};
  args.update(extra);
  return args;
}

} // namespace exai::test
