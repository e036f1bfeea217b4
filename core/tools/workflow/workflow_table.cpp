// The table-driven workflow tools. Adding one = an entry here (by name
// order) + its system prompt in core/tools/prompts/<prompt>.txt + a README
// entry.

#include "core/tools/workflow/workflow.hpp"

namespace exai::core::workflow {

namespace {

using fields::choice;
using fields::severity_filter;
using fields::text;
using nlohmann::json;

json
texts(const char* description)
{
  return {{"type", "array"},
          {"items", {{"type", "string"}, {"minLength", 1}, {"maxLength", 4096}}},
          {"maxItems", 100},
          {"description", description}};
}

json
flag(const char* description)
{
  return {{"type", "boolean"}, {"default", true}, {"description", description}};
}

json
count(const char* description)
{
  return {{"type", "integer"}, {"minimum", 0}, {"default", 0}, {"description", description}};
}

std::vector<WorkflowDef>
build()
{
  std::vector<WorkflowDef> table;

  WorkflowDef analyze;
  analyze.name = "analyze";
  analyze.title = "Analyze code step by step";
  analyze.description =
      "Step-by-step analysis of a codebase (architecture, performance, security, quality): you "
      "investigate in steps, exai keeps the state, and on the final step an expert model "
      "reviews your findings and the relevant files. Intermediate steps call no model.";
  analyze.prompt = "analyze";
  analyze.fields = {
      {"analysis_type",
       choice({"architecture", "performance", "security", "quality", "general"},
              "general",
              "What the analysis is about")},
      {"output_format",
       choice({"summary", "detailed", "actionable"}, "detailed", "How the expert should answer")}};
  analyze.first_step_required = {"relevant_files"};
  analyze.first_actions = {
      "Read the relevant files and map the structure: entry points, modules, dependencies",
      "Identify the architecture and the main data and control flows",
      "Note the questions the analysis must answer and where the evidence will be"};
  analyze.middle_actions = {
      "Examine the areas the analysis type asks about (design, scalability, performance, "
      "security, maintainability) in the code itself",
      "Look for over-engineering, needless complexity and missing abstractions alike",
      "Record concrete evidence (file:line) for every finding"};
  analyze.last_actions = {
      "Verify each finding against the code once more; drop what you cannot support",
      "Rank the findings by impact and list the files the expert must see in relevant_files"};
  table.push_back(std::move(analyze));

  WorkflowDef codereview;
  codereview.name = "codereview";
  codereview.title = "Review code step by step";
  codereview.description =
      "Systematic code review (quality, security, performance, architecture) in steps: you "
      "read and report issues with severity, exai keeps the state, and on the final step an "
      "expert model reviews the code and your findings. Intermediate steps call no model.";
  codereview.prompt = "codereview";
  codereview.fields = {
      {"review_type",
       choice(
           {"full", "security", "performance", "quick"}, "full", "Depth and focus of the review")},
      {"focus_on", text("Areas to concentrate on, e.g. 'thread safety of the cache'")},
      {"standards", text("Coding standards to hold the code to")},
      {"severity_filter", severity_filter()}};
  codereview.first_step_required = {"relevant_files"};
  codereview.first_actions = {
      "Read every file under review in full and understand its purpose and callers",
      "Check correctness first: logic errors, edge cases, error handling, resource lifetimes",
      "Record each issue in issues_found with severity, description and location"};
  codereview.middle_actions = {
      "Check security (input validation, injection, secrets) and concurrency",
      "Check performance and scalability where the code is on a hot path",
      "Check design and maintainability: naming, duplication, coupling, tests"};
  codereview.last_actions = {"Confirm each recorded issue in the code; remove false positives",
                             "Make sure relevant_files lists every file the expert must read"};
  table.push_back(std::move(codereview));

  WorkflowDef debug;
  debug.name = "debug";
  debug.title = "Debug step by step";
  debug.description =
      "Root-cause investigation of a bug in steps: you gather evidence and test hypotheses, "
      "exai keeps the state, and on the final step an expert model checks your hypothesis "
      "against the evidence and the relevant files. Intermediate steps call no model.";
  debug.prompt = "debug";
  debug.first_actions = {"Reproduce or pin down the symptom: exact error, inputs, conditions",
                         "Find the code paths involved and read them",
                         "State a first hypothesis and what evidence would confirm or refute it"};
  debug.middle_actions = {
      "Test the current hypothesis against the code: trace values, state and timing",
      "Look for the cause, not the symptom: what else would break if you are right?",
      "Revise the hypothesis and confidence; backtrack from a dead end with "
      "backtrack_from_step"};
  debug.last_actions = {"Check the root cause explains every symptom you recorded",
                        "Put the files holding the cause and the fix in relevant_files"};
  table.push_back(std::move(debug));

  WorkflowDef docgen;
  docgen.name = "docgen";
  docgen.title = "Plan documentation step by step";
  docgen.description =
      "Documentation generation in steps: you go through the files to document and record "
      "what each needs (complexity, call flow, gaps), exai keeps the state, and on the final "
      "step an expert model proposes the documentation. Intermediate steps call no model.";
  docgen.prompt = "docgen";
  docgen.model_class = ModelClass::fast;
  docgen.hypothesis = false;
  docgen.fields = {
      {"document_complexity", flag("Include Big-O complexity where it matters")},
      {"document_flow", flag("Describe call flow and dependencies")},
      {"update_existing", flag("Improve existing documentation that is wrong or incomplete")},
      {"comments_on_complex_logic", flag("Add inline comments on non-obvious logic")},
      {"num_files_documented", count("Files documented so far")},
      {"total_files_to_document", count("Files to document in all")}};
  docgen.first_actions = {
      "List every file that needs documentation and set total_files_to_document",
      "Read the first file: public interface, behaviour, error cases",
      "Note existing documentation that is wrong or missing"};
  docgen.middle_actions = {
      "Document the next file completely before moving on; update num_files_documented",
      "Note complexity and call flow where the options ask for them"};
  docgen.last_actions = {"Check every file in the list is covered",
                         "List the files in relevant_files so the expert can read them"};
  table.push_back(std::move(docgen));

  table.push_back(precommit_workflow());

  WorkflowDef refactor;
  refactor.name = "refactor";
  refactor.title = "Find refactoring opportunities step by step";
  refactor.description =
      "Refactoring analysis in steps (code smells, decomposition, modernisation, "
      "organisation): you record opportunities, exai keeps the state, and on the final step "
      "an expert model prioritises them with concrete changes. Intermediate steps call no "
      "model.";
  refactor.prompt = "refactor";
  refactor.skip_expert_at = Confidence::almost_certain;
  refactor.fields = {
      {"refactor_type",
       choice({"codesmells", "decompose", "modernize", "organization"},
              "codesmells",
              "Kind of refactoring to look for")},
      {"focus_areas", texts("Areas to concentrate on, e.g. 'performance', 'readability'")},
      {"style_guide_examples",
       texts("Absolute paths of files whose style the refactoring should follow")}};
  refactor.first_step_required = {"relevant_files"};
  refactor.first_actions = {
      "Read the code in full and understand what it does and who calls it",
      "Record each opportunity in issues_found (type = the refactoring kind)"};
  refactor.middle_actions = {
      "Look for large functions and classes, duplication, dead code and unclear names",
      "Check each opportunity is safe: callers, tests and behaviour stay the same"};
  refactor.last_actions = {"Order the opportunities by value and risk",
                           "Put every file to change in relevant_files"};
  table.push_back(std::move(refactor));

  WorkflowDef secaudit;
  secaudit.name = "secaudit";
  secaudit.title = "Security audit step by step";
  secaudit.description =
      "Security audit in steps (OWASP Top 10, authentication, input handling, secrets, "
      "dependencies, compliance): you examine one area per step, exai keeps the state, and "
      "on the final step an expert model assesses the vulnerabilities. Intermediate steps "
      "call no model.";
  secaudit.prompt = "secaudit";
  secaudit.fields = {
      {"security_scope", text("What is audited: application type, users, data, deployment")},
      {"threat_level",
       choice({"low", "medium", "high", "critical"}, "medium", "How hostile the environment is")},
      {"compliance_requirements", texts("Standards to check, e.g. 'SOC2', 'GDPR', 'PCI DSS'")},
      {"audit_focus",
       choice({"owasp", "compliance", "infrastructure", "dependencies", "comprehensive"},
              "comprehensive",
              "Main focus of the audit")},
      {"severity_filter", severity_filter()}};
  secaudit.first_step_required = {"relevant_files"};
  secaudit.first_actions = {
      "Map the attack surface: entry points, trust boundaries, data that matters",
      "Identify how authentication and authorisation work"};
  secaudit.middle_actions = {
      "Audit one area per step: authn/authz, input validation and injection, cryptography "
      "and secrets, configuration and logging, dependencies",
      "Record each vulnerability with severity, location and how it is exploited"};
  secaudit.last_actions = {"Check each vulnerability is real and reachable",
                           "Note compliance gaps for the requirements given"};
  table.push_back(std::move(secaudit));

  WorkflowDef testgen;
  testgen.name = "testgen";
  testgen.title = "Plan tests step by step";
  testgen.description =
      "Test generation in steps: you study the code under test and record the behaviours, "
      "edge cases and failure modes worth testing, exai keeps the state, and on the final "
      "step an expert model writes the tests. Intermediate steps call no model.";
  testgen.prompt = "testgen";
  testgen.model_class = ModelClass::fast;
  testgen.first_step_required = {"relevant_files"};
  testgen.first_actions = {
      "Read the code under test and the existing tests; note the test framework and style",
      "List the public behaviours and their inputs"};
  testgen.middle_actions = {
      "Find edge cases: empty, boundary, invalid and huge inputs; errors; concurrency; "
      "timeouts",
      "Note what each test needs (fixtures, fakes) in the project's own style"};
  testgen.last_actions = {"Order the scenarios by risk",
                          "Put the code under test and an example test in relevant_files"};
  table.push_back(std::move(testgen));

  WorkflowDef thinkdeep;
  thinkdeep.name = "thinkdeep";
  thinkdeep.title = "Think deeply step by step";
  thinkdeep.description =
      "Structured deep thinking about a hard problem (design choices, trade-offs, complex "
      "bugs) in steps, ending with an expert model that challenges and extends your "
      "reasoning. Intermediate steps call no model.";
  thinkdeep.prompt = "thinkdeep";
  thinkdeep.default_temperature = 0.7;
  thinkdeep.fields = {{"problem_context", text("Background the expert needs beyond the files")},
                      {"focus_areas", texts("Aspects to concentrate on, e.g. 'scalability'")}};
  thinkdeep.first_actions = {"State the problem, the constraints and what a good answer looks like",
                             "List the options and the evidence you need to compare them"};
  thinkdeep.middle_actions = {"Gather the evidence for each option in the code and the docs",
                              "Challenge your current favourite: what would make it wrong?"};
  thinkdeep.last_actions = {"Write down the conclusion and the assumptions it rests on"};
  table.push_back(std::move(thinkdeep));

  WorkflowDef tracer;
  tracer.name = "tracer";
  tracer.title = "Trace code step by step";
  tracer.description =
      "Code tracing in steps: precision mode follows one method's execution path (calls, "
      "branches, side effects); dependencies mode maps what a class or module uses and what "
      "uses it. exai keeps the state; the final step's expert model turns it into a trace "
      "report. Intermediate steps call no model.";
  tracer.prompt = "tracer";
  tracer.model_class = ModelClass::fast;
  tracer.hypothesis = false;
  tracer.fields = {{"trace_mode",
                    choice({"precision", "dependencies"},
                           "precision",
                           "precision: one method's execution flow; dependencies: a component's "
                           "incoming and outgoing dependencies")},
                   {"target_description",
                    text("What to trace and why, e.g. 'how a call_tool frame reaches "
                         "the upstream'")}};
  tracer.first_step_required = {"trace_mode", "target_description"};
  tracer.first_actions = {"Locate the target's definition and read it",
                          "List its direct callers and callees"};
  tracer.middle_actions = {
      "Follow the next level of calls (precision) or dependents (dependencies)",
      "Note branches, side effects, state changes and error paths with file:line"};
  tracer.last_actions = {"Check the trace is complete for the target you described"};
  table.push_back(std::move(tracer));

  return table;
}

} // namespace

const std::vector<WorkflowDef>&
table()
{
  static const std::vector<WorkflowDef> defs = build();
  return defs;
}

} // namespace exai::core::workflow
