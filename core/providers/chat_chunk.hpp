#pragma once

// The common streamed chunk read without a JSON tree. Nearly every event of a
// streamed answer is a content delta for choice 0; building a tree for each
// (a map per object, a string per member) was the largest single cost of a
// streamed call. This reader follows the chunk with nlohmann's SAX events and
// accepts it only when every member ChatStream reads is of the simple kind;
// anything else (an error, usage, web search, tool calls, an unexpected shape,
// a repeated member, malformed JSON) makes it decline, and ChatStream reads
// that chunk the general way. So it only ever has to agree with the general
// reading on the chunks it accepts, which the fuzz target checks.

#include <cstddef>
#include <string>
#include <string_view>

namespace exai::core::openai {

struct SimpleChunk {
  std::string model;         // the top-level "model" when a non-empty string
  bool saw_choice = false;   // a choice object that counts (index absent, null or 0)
  std::string finish_reason; // the last non-empty one of the counted choices
  std::string content;       // the counted choices' content, in order
  std::size_t reasoning_bytes = 0;
};

// Fills `out` from `data` (one event's data) and returns true when the chunk
// is of the simple kind; false (with `out` unspecified) otherwise.
bool read_simple_chunk(std::string_view data, SimpleChunk& out);

} // namespace exai::core::openai
