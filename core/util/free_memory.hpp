#pragma once

namespace exai::core {

// Gives the allocator's free pages back to the system: jemalloc's arenas are
// purged when the process runs on jemalloc (the exai binary links it, see
// CMakeLists.txt), glibc's heap is trimmed otherwise (sanitizer builds, tests).
void release_free_memory() noexcept;

} // namespace exai::core
