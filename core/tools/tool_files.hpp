#pragma once

// What model-calling tools share around the files they embed: how many
// tokens are left for them, how the reply reports them, and the note the
// model reads about files that were left out.

#include "core/files/file_bundle.hpp"
#include "core/tools/tool.hpp"

#include <cstddef>
#include <string>

namespace exai::core {

// Files always get at least this many tokens, however full the context is.
inline constexpr std::size_t kMinFileBudget = 1000;

// Tokens left for files: the smaller context window of the call's model and
// its fallback, minus room for the answer and `used_tokens` (everything else
// the request sends).
std::size_t file_token_budget(const ToolContext& context, std::size_t used_tokens);

// metadata.files of a reply: {embedded:[{path,lines,tokens}], skipped:[{path,reason}], tokens}.
nlohmann::json files_metadata(const FileBundle& bundle);

// The block that tells the model which files were not included and why;
// empty when every file fit.
std::string skipped_note(const std::vector<SkippedFile>& skipped);

} // namespace exai::core
