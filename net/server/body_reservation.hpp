#pragma once

// A share of EXAI_HTTP_BODIES_MAX_BYTES, held by a connection while it
// receives a request body larger than a pending connection may make us
// buffer. Given back when reset or destroyed, so a connection that ends
// mid-body (or is cut at its deadline) cannot keep it. Move-only; the
// counter it returns to (the hub's) outlives it.

#include <atomic>
#include <cstddef>
#include <utility>

namespace exai::net {

class BodyReservation {
public:
  BodyReservation() = default;
  BodyReservation(std::atomic<std::size_t>& total, std::size_t bytes) noexcept
      : total_(&total)
      , bytes_(bytes)
  {
  }
  BodyReservation(BodyReservation&& other) noexcept
      : total_(std::exchange(other.total_, nullptr))
      , bytes_(std::exchange(other.bytes_, 0))
  {
  }
  BodyReservation& operator=(BodyReservation&& other) noexcept
  {
    if (this != &other) {
      reset();
      total_ = std::exchange(other.total_, nullptr);
      bytes_ = std::exchange(other.bytes_, 0);
    }
    return *this;
  }
  BodyReservation(const BodyReservation&) = delete;
  BodyReservation& operator=(const BodyReservation&) = delete;
  ~BodyReservation() { reset(); }

  void reset() noexcept
  {
    if (total_ != nullptr) {
      total_->fetch_sub(bytes_);
      total_ = nullptr;
      bytes_ = 0;
    }
  }
  explicit operator bool() const noexcept { return total_ != nullptr; }

private:
  std::atomic<std::size_t>* total_ = nullptr;
  std::size_t bytes_ = 0;
};

} // namespace exai::net
