#pragma once

#include <utility>

namespace exai::core {

// Runs `fn` when the scope ends, by return or by exception: for the one
// counter or answer a job must give back whatever happens inside it.
template <typename Fn> class ScopeExit {
public:
  explicit ScopeExit(Fn fn)
      : fn_(std::move(fn))
  {
  }
  ScopeExit(const ScopeExit&) = delete;
  ScopeExit& operator=(const ScopeExit&) = delete;
  ~ScopeExit() { fn_(); }

private:
  Fn fn_;
};

} // namespace exai::core
