// Python's operators over template values: + - * / // % ** and unary minus with int/float
// promotion and floor semantics, sequence concatenation and repetition, `in`.
#include <cmath>
#include <limits>

#include "chat/evaluator.hpp"
#include "chat/py_format.hpp"
#include "chat/py_text.hpp"

namespace mii::detail::jinja {
namespace {

[[noreturn]] void unsupported(std::string_view op, const value& a, const value& b) {
  if (a.is_undefined()) fail_undefined(a);
  if (b.is_undefined()) fail_undefined(b);
  if (op == "+" && (a.is_string() || a.type() == kind::list || a.type() == kind::tuple))
    raise("can only concatenate " + type_name(a) + " (not \"" + type_name(b) + "\") to " + type_name(a));
  raise("unsupported operand type(s) for " + std::string(op) + ": '" + type_name(a) + "' and '" + type_name(b) + "'");
}

value repeat(const value& seq, std::int64_t times) {
  if (times < 0) times = 0;
  if (seq.is_string()) {
    const std::string& s = seq.str();
    if (!s.empty() && static_cast<std::uint64_t>(times) > max_string_bytes / s.size())
      raise("repeating a string makes more than the limit of " + std::to_string(max_string_bytes) + " bytes");
    std::string out;
    out.reserve(s.size() * static_cast<std::size_t>(times));
    for (std::int64_t i = 0; i < times; ++i) out += s;
    return value::string(std::move(out));
  }
  const list_data& l = seq.items();
  if (!l.items.empty() && static_cast<std::uint64_t>(times) > max_list_items / l.items.size())
    raise("repeating a list makes more than the limit of " + std::to_string(max_list_items) + " items");
  std::vector<value> out;
  out.reserve(l.items.size() * static_cast<std::size_t>(times));
  for (std::int64_t i = 0; i < times; ++i) out.insert(out.end(), l.items.begin(), l.items.end());
  return l.tuple ? value::tuple(std::move(out)) : value::list(std::move(out));
}

// Python's float divmod (floatobject.c), so that -7.5 // 2 and -7.5 % 2 match exactly.
void float_divmod(double vx, double wx, double& div_out, double& mod_out) {
  double mod = std::fmod(vx, wx);
  double div = (vx - mod) / wx;
  if (mod != 0.0) {
    if ((wx < 0) != (mod < 0)) {
      mod += wx;
      div -= 1.0;
    }
  } else {
    mod = std::copysign(0.0, wx);
  }
  double floordiv;
  if (div != 0.0) {
    floordiv = std::floor(div);
    if (div - floordiv > 0.5) floordiv += 1.0;
  } else {
    floordiv = std::copysign(0.0, vx / wx);
  }
  div_out = floordiv;
  mod_out = mod;
}

std::int64_t int_floordiv(std::int64_t a, std::int64_t b) {
  if (b == 0) raise("integer division or modulo by zero");
  if (a == std::numeric_limits<std::int64_t>::min() && b == -1) checked_mul(a, b);  // overflows: fails
  std::int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

std::int64_t int_mod(std::int64_t a, std::int64_t b) {
  if (b == 0) raise("integer division or modulo by zero");
  if (b == -1) return 0;
  std::int64_t r = a % b;
  if (r != 0 && ((r < 0) != (b < 0))) r += b;
  return r;
}

value power(const value& a, const value& b) {
  if (a.is_integral() && b.is_integral()) {
    std::int64_t base = a.as_int(), exp = b.as_int();
    if (exp >= 0) {
      std::int64_t result = 1;
      while (exp > 0) {
        if (exp & 1) result = checked_mul(result, base);
        exp >>= 1;
        if (exp) base = checked_mul(base, base);
      }
      return value::integer(result);
    }
    if (base == 0) raise("0.0 cannot be raised to a negative power");
    return value::floating(std::pow(static_cast<double>(base), static_cast<double>(exp)));
  }
  const double x = a.as_float(), y = b.as_float();
  if (x == 0.0 && y < 0.0) raise("0.0 cannot be raised to a negative power");
  if (x < 0.0 && std::isfinite(y) && y != std::floor(y))
    raise("a negative number raised to a fractional power is complex; mii does not support complex numbers");
  const double r = std::pow(x, y);
  if (std::isinf(r) && std::isfinite(x) && std::isfinite(y)) raise("(34, 'Numerical result out of range')");
  return value::floating(r);
}

}  // namespace

value binary_op(std::string_view op, const value& a, const value& b) {
  const bool numbers = a.is_number() && b.is_number();
  const bool ints = a.is_integral() && b.is_integral();
  if (op == "+") {
    if (numbers) return ints ? value::integer(checked_add(a.as_int(), b.as_int())) : value::floating(a.as_float() + b.as_float());
    if (a.is_string() && b.is_string()) {
      if (a.str().size() + b.str().size() > max_string_bytes)
        raise("a string exceeds the limit of " + std::to_string(max_string_bytes) + " bytes");
      return value::string(a.str() + b.str());
    }
    if (a.is_sequence_like() && b.is_sequence_like() && a.items().tuple == b.items().tuple) {
      const auto &x = a.items().items, &y = b.items().items;
      if (x.size() + y.size() > max_list_items) raise("a list exceeds the limit of " + std::to_string(max_list_items) + " items");
      std::vector<value> out(x);
      out.insert(out.end(), y.begin(), y.end());
      return a.items().tuple ? value::tuple(std::move(out)) : value::list(std::move(out));
    }
    unsupported(op, a, b);
  }
  if (op == "-") {
    if (numbers) return ints ? value::integer(checked_sub(a.as_int(), b.as_int())) : value::floating(a.as_float() - b.as_float());
    unsupported(op, a, b);
  }
  if (op == "*") {
    if (numbers) return ints ? value::integer(checked_mul(a.as_int(), b.as_int())) : value::floating(a.as_float() * b.as_float());
    if ((a.is_string() || a.is_sequence_like()) && b.is_integral()) return repeat(a, b.as_int());
    if ((b.is_string() || b.is_sequence_like()) && a.is_integral()) return repeat(b, a.as_int());
    if ((a.is_string() || a.is_sequence_like()) && !b.is_undefined() && !a.is_undefined())
      raise("can't multiply sequence by non-int of type '" + type_name(b) + "'");
    unsupported(op, a, b);
  }
  if (op == "/") {
    if (!numbers) unsupported(op, a, b);
    if (b.as_float() == 0.0) raise(ints ? "division by zero" : "float division by zero");
    if (ints) {
      // int / int is correctly rounded in Python; long double keeps 64-bit ints exact.
      return value::floating(static_cast<double>(static_cast<long double>(a.as_int()) / static_cast<long double>(b.as_int())));
    }
    return value::floating(a.as_float() / b.as_float());
  }
  if (op == "//" || op == "%") {
    if (op == "%" && a.is_string()) return value::string(percent_format(a.str(), b));
    if (!numbers) unsupported(op, a, b);
    if (ints) return value::integer(op == "//" ? int_floordiv(a.as_int(), b.as_int()) : int_mod(a.as_int(), b.as_int()));
    if (b.as_float() == 0.0) raise(op == "//" ? "float floor division by zero" : "float modulo");
    double div, mod;
    float_divmod(a.as_float(), b.as_float(), div, mod);
    return value::floating(op == "//" ? div : mod);
  }
  if (op == "**") {
    if (!numbers) unsupported(op, a, b);
    return power(a, b);
  }
  raise("unknown operator " + std::string(op));
}

value negate(const value& v) {
  if (v.is_integral()) return value::integer(checked_sub(0, v.as_int()));
  if (v.is_float()) return value::floating(-v.as_float());
  if (v.is_undefined()) fail_undefined(v);
  raise("bad operand type for unary -: '" + type_name(v) + "'");
}

value positive(const value& v) {
  if (v.is_integral()) return value::integer(v.as_int());
  if (v.is_float()) return v;
  if (v.is_undefined()) fail_undefined(v);
  raise("bad operand type for unary +: '" + type_name(v) + "'");
}

bool contains(const value& container, const value& item) {
  switch (container.type()) {
    case kind::undefined: return false;  // jinja2's Undefined iterates as empty
    case kind::string:
      if (!item.is_string()) raise("'in <string>' requires string as left operand, not " + type_name(item));
      return container.str().find(item.str()) != std::string::npos;
    case kind::list:
    case kind::tuple:
      for (const value& v : container.items().items)
        if (py_equal(v, item)) return true;
      return false;
    case kind::dict:
      if (!is_hashable(item)) raise("unhashable type: '" + type_name(item) + "'");
      return container.dict().find(item) != nullptr;
    default: raise("argument of type '" + type_name(container) + "' is not iterable");
  }
}

}  // namespace mii::detail::jinja
