// mii::error: the one exception type the library throws for bad input and failed operations.
// Messages name the file, the field or tensor, and the offending values, so that a user can fix
// the input without reading our source.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace mii {

struct error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

namespace detail {
template <class... Args>
std::string concat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}
}  // namespace detail

// throw mii::error(concat(args...)); kept out of line of the hot path by [[noreturn]].
template <class... Args>
[[noreturn]] void fail(Args&&... args) {
  throw error(detail::concat(std::forward<Args>(args)...));
}

}  // namespace mii
