#include "core/util/free_memory.hpp"

#include <malloc.h>

#include <cstddef>

// jemalloc's control interface, resolved at load time when jemalloc is the
// process's allocator and null otherwise: exai_core does not link it.
extern "C" int
mallctl(const char* name, void* oldp, std::size_t* oldlenp, void* newp, std::size_t newlen)
    __attribute__((weak));

namespace exai::core {

void
release_free_memory() noexcept
{
  if (mallctl != nullptr) {
    // MALLCTL_ARENAS_ALL (4096): every arena, without jemalloc's header.
    mallctl("arena.4096.purge", nullptr, nullptr, nullptr, 0);
    return;
  }
  ::malloc_trim(0);
}

} // namespace exai::core
