// precommit: the agent reviews its pending changes in steps; on the final
// step exai runs git on the repository at `path` itself and sends its status
// and diffs to the expert with the relevant files.

#include "core/config/config.hpp"
#include "core/files/file_roots.hpp"
#include "core/tools/workflow/step_state.hpp"
#include "core/tools/workflow/workflow.hpp"
#include "core/util/subprocess.hpp"

#include <algorithm>
#include <cctype>

namespace exai::core::workflow {

namespace {

using nlohmann::json;

// Each git command gets at most this long (and never beyond the call's deadline).
constexpr std::chrono::seconds kGitTimeout{30};
// Diff text sent to the expert, in all; the rest is cut with a note.
constexpr std::size_t kMaxDiffBytes = std::size_t{512} << 10U;

// A ref the caller names goes to git as an argument: no options, no oddities.
bool
plain_ref(const std::string& ref)
{
  return !ref.empty() && ref.size() <= 256 && ref.front() != '-' &&
         std::all_of(ref.begin(), ref.end(), [](char c) {
           return std::isalnum(static_cast<unsigned char>(c)) != 0 ||
                  std::string_view("._/~^@{}-").find(c) != std::string_view::npos;
         });
}

class Git {
public:
  Git(ToolContext& context, std::string directory)
      : context_(context)
      , directory_(std::move(directory))
  {
  }

  // git's output; throws Error(tool_execution_error) when git cannot run or fails.
  std::string run(std::vector<std::string> args, std::size_t max_output = kMaxDiffBytes)
  {
    // The repository is the user's, but its configuration must not make the
    // daemon run programs: no fsmonitor, no external diff, no textconv.
    std::vector<std::string> argv = {"git",
                                     "-C",
                                     directory_,
                                     "--no-pager",
                                     "-c",
                                     "core.fsmonitor=false",
                                     "-c",
                                     "core.untrackedCache=false"};
    argv.insert(argv.end(), args.begin(), args.end());
    ProcessOptions options;
    options.deadline = std::min(context_.deadline, std::chrono::steady_clock::now() + kGitTimeout);
    options.stop = context_.stop;
    options.max_output = max_output;
    options.environment = {"GIT_TERMINAL_PROMPT=0", "GIT_OPTIONAL_LOCKS=0", "LC_ALL=C"};
    const auto result = run_process(argv, options);
    if (!result) {
      throw Error(Errc::tool_execution_error, "precommit: cannot run git (is it installed?)");
    }
    if (result->killed) {
      throw Error(Errc::tool_execution_error,
                  "precommit: git " + args.front() + " did not finish in time");
    }
    last_exit_ = result->exit_code;
    last_error_ = result->err;
    truncated_ = truncated_ || result->truncated;
    return result->out;
  }

  int last_exit() const noexcept { return last_exit_; }
  const std::string& last_error() const noexcept { return last_error_; }
  bool truncated() const noexcept { return truncated_; }

private:
  ToolContext& context_;
  std::string directory_;
  int last_exit_ = 0;
  std::string last_error_;
  bool truncated_ = false;
};

std::string
trimmed(std::string text)
{
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) {
    text.pop_back();
  }
  return text;
}

std::string
git_evidence(ToolContext& context, const json& fields)
{
  const std::string path = fields.value("path", "");
  auto opened = context.file_roots.open(path);
  if (auto* refusal = std::get_if<PathRefusal>(&opened)) {
    invalid("path", path, refusal->rule);
  }
  const auto& directory = std::get<OpenedPath>(opened);
  if (!directory.directory()) {
    invalid("path", path, "must be a directory inside a git repository");
  }
  Git git(context, directory.path);
  const std::string top = trimmed(git.run({"rev-parse", "--show-toplevel"}));
  if (git.last_exit() != 0 || top.empty()) {
    invalid("path", path, "is not inside a git repository");
  }
  // The diff shows every file of the repository: all of it must be
  // readable under the roots, not only `path`.
  if (!context.file_roots.contains(top)) {
    invalid("path",
            path,
            "belongs to the repository at " + top + ", which is outside EXAI_FILE_ROOTS (" +
                context.file_roots.describe() + ")");
  }

  const std::string compare_to = fields.value("compare_to", "");
  const bool staged = fields.value("include_staged", true);
  const bool unstaged = fields.value("include_unstaged", true);
  if (!compare_to.empty() && !plain_ref(compare_to)) {
    invalid("compare_to", compare_to, "must be a branch, tag or commit name");
  }
  if (compare_to.empty() && !staged && !unstaged) {
    invalid("include_staged",
            false,
            "nothing to review: include staged or unstaged changes, or set compare_to");
  }

  std::string text = "\n=== GIT REPOSITORY ===\n" + top + "\n\n=== GIT STATUS ===\n" +
                     trimmed(git.run({"status", "--porcelain=v1", "--branch"})) + "\n";
  const std::vector<std::string> diff = {
      "diff", "--no-ext-diff", "--no-textconv", "--no-color", "--stat", "--patch"};
  std::size_t room = kMaxDiffBytes;
  const auto section = [&](const std::string& title, std::vector<std::string> args) {
    std::string out = git.run(std::move(args), room);
    if (git.last_exit() != 0) {
      const std::string why = trimmed(git.last_error());
      if (!compare_to.empty()) {
        invalid("compare_to", compare_to, "git cannot diff against it: " + why);
      }
      throw Error(Errc::tool_execution_error, "precommit: git diff failed: " + why);
    }
    room -= std::min(room, out.size());
    text += "\n=== " + title + " ===\n" + (out.empty() ? "(no changes)\n" : out);
  };
  if (!compare_to.empty()) {
    auto args = diff;
    args.insert(args.end(), {compare_to, "--"});
    section("CHANGES AGAINST " + compare_to + " (git diff " + compare_to + ")", args);
  } else {
    if (staged) {
      auto args = diff;
      args.insert(args.end(), {"--cached", "--"});
      section("STAGED CHANGES (git diff --cached)", args);
    }
    if (unstaged) {
      auto args = diff;
      args.emplace_back("--");
      section("UNSTAGED CHANGES (git diff)", args);
    }
  }
  if (git.truncated()) {
    text += "\n[the diff was cut at " + std::to_string(kMaxDiffBytes >> 10U) +
            " KiB; ask for the rest by file]\n";
  }
  return text;
}

} // namespace

WorkflowDef
precommit_workflow()
{
  WorkflowDef def;
  def.name = "precommit";
  def.title = "Validate changes before committing";
  def.description =
      "Pre-commit validation of a git repository's pending changes in steps: you review the "
      "changes, exai keeps the state, and on the final step exai runs git on `path` itself "
      "(status and staged/unstaged diffs, or the diff against compare_to) and an expert model "
      "reviews the diff with your findings. Intermediate steps call no model and run nothing.";
  def.prompt = "precommit";
  def.fields = {
      {"path",
       {{"type", "string"},
        {"minLength", 1},
        {"maxLength", 4096},
        {"description",
         "Absolute path of the repository (or a directory inside it) under EXAI_FILE_ROOTS"}}},
      {"compare_to",
       {{"type", "string"},
        {"minLength", 1},
        {"maxLength", 256},
        {"description",
         "A branch, tag or commit: review the working tree against it instead of the staged "
         "and unstaged changes"}}},
      {"include_staged",
       {{"type", "boolean"}, {"default", true}, {"description", "Review staged changes"}}},
      {"include_unstaged",
       {{"type", "boolean"}, {"default", true}, {"description", "Review unstaged changes"}}},
      {"focus_on", fields::text("Aspects to concentrate on, e.g. 'error handling'")},
      {"severity_filter", fields::severity_filter()}};
  def.first_step_required = {"path"};
  def.first_actions = {
      "Run git status and git diff in the repository yourself and read every change",
      "State the intent of the change and check the diff does that and nothing else"};
  def.middle_actions = {
      "Check each changed file for bugs, missing error handling, leftover debug code and "
      "secrets",
      "Check tests and documentation were updated with the behaviour"};
  def.last_actions = {"List the files that matter in relevant_files",
                      "Record each issue with severity before the final step"};
  def.evidence = git_evidence;
  return def;
}

} // namespace exai::core::workflow
