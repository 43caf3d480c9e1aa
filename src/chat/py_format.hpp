// Python's two string formatting mini-languages, as far as templates use them:
// "%s and %d" % (a, b)  and  "{} and {name}".format(a, name=b).
#pragma once
#include <string>
#include <string_view>

#include "chat/value.hpp"

namespace mii::detail::jinja {

// fmt % args: a tuple supplies several arguments, a dict named ones (%(key)s), anything else one.
std::string percent_format(std::string_view fmt, const value& args);

// fmt.format(*args, **kwargs): fields {}, {0}, {name}, with !r / !s and a format spec
// ([[fill]align][sign][#][0][width][,][.precision][type]).
std::string brace_format(std::string_view fmt, const call_args& args);

// format(v, spec) for one value, as brace_format applies a spec.
std::string format_with_spec(const value& v, std::string_view spec);

}  // namespace mii::detail::jinja
