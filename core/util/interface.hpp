#pragma once

namespace exai::core {

// Base of the polymorphic interfaces (implemented elsewhere, used through a
// pointer or reference): never copied, so an implementation is never sliced,
// and always destroyed through the interface.
class Interface {
public:
  Interface(const Interface&) = delete;
  Interface& operator=(const Interface&) = delete;
  virtual ~Interface() = default;

protected:
  Interface() = default;
};

} // namespace exai::core
