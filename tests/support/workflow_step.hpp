#pragma once

// The arguments of one workflow tool step (analyze, codereview, planner, ...),
// shared by the in-process workflow tests and the end-to-end ones. Header-only
// so that core tests, which link no test support library, can use it.

#include <nlohmann/json.hpp>

#include <string>

namespace exai::test {

// Step `number` of `total` whose text is `text`, without findings (planner,
// the later consensus steps); `more` is next_step_required. `extra` adds or
// replaces fields.
inline nlohmann::json
plan_step(int number,
          int total,
          bool more,
          const std::string& text,
          nlohmann::json extra = nlohmann::json::object())
{
  nlohmann::json args = {{"step", text},
                         {"step_number", number},
                         {"total_steps", total},
                         {"next_step_required", more}};
  args.update(extra);
  return args;
}

// A workflow step with the agent's `findings`.
inline nlohmann::json
step(int number,
     int total,
     bool more,
     const std::string& findings,
     nlohmann::json extra = nlohmann::json::object())
{
  nlohmann::json args = plan_step(number,
                                  total,
                                  more,
                                  "step " + std::to_string(number) + " of the task",
                                  {{"findings", findings}});
  args.update(extra);
  return args;
}

} // namespace exai::test
