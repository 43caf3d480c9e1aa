#include "chat/py_format.hpp"

#include <cmath>
#include <cstdint>
#include <cstdio>

#include "chat/py_text.hpp"

namespace mii::detail::jinja {
namespace {

struct spec {
  std::u32string fill = U" ";
  char align = 0;  // < > ^ =
  char sign = '-';
  bool alternate = false;
  bool zero = false;
  long long width = -1;
  long long precision = -1;
  bool grouping = false;
  char type = 0;
};

long long read_number(std::string_view s, std::size_t& i) {
  long long n = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
    n = n * 10 + (s[i++] - '0');
    if (n > static_cast<long long>(max_string_bytes)) raise("format width or precision is too large");
  }
  return n;
}

std::string pad(std::string body, const spec& sp, char default_align) {
  const long long len = static_cast<long long>(char_count(body));
  if (sp.width <= len) return body;
  const auto missing = static_cast<std::size_t>(sp.width - len);
  const char align = sp.align ? sp.align : default_align;
  const std::string fill = from_u32(sp.fill);
  auto repeat = [&](std::size_t n) {
    std::string out;
    for (std::size_t i = 0; i < n; ++i) out += fill;
    return out;
  };
  if (align == '<') return body + repeat(missing);
  if (align == '>') return repeat(missing) + body;
  if (align == '^') return repeat(missing / 2) + body + repeat(missing - missing / 2);
  // '=': padding after the sign.
  std::size_t sign_len = !body.empty() && (body[0] == '-' || body[0] == '+' || body[0] == ' ') ? 1 : 0;
  if (body.size() > sign_len + 1 && body[sign_len] == '0' && (body[sign_len + 1] == 'x' || body[sign_len + 1] == 'X' ||
                                                              body[sign_len + 1] == 'o' || body[sign_len + 1] == 'b'))
    sign_len += 2;
  return body.substr(0, sign_len) + repeat(missing) + body.substr(sign_len);
}

std::string group_thousands(const std::string& digits) {
  std::string out;
  const std::size_t n = digits.size();
  for (std::size_t i = 0; i < n; ++i) {
    if (i && (n - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return out;
}

std::string format_int(std::int64_t v, const spec& sp) {
  const bool negative = v < 0;
  const unsigned long long mag = negative ? 0ULL - static_cast<unsigned long long>(v) : static_cast<unsigned long long>(v);
  std::string digits;
  const char t = sp.type ? sp.type : 'd';
  const int base = t == 'x' || t == 'X' ? 16 : t == 'o' ? 8 : t == 'b' ? 2 : 10;
  unsigned long long m = mag;
  do {
    const int d = static_cast<int>(m % static_cast<unsigned>(base));
    digits.insert(digits.begin(), static_cast<char>(d < 10 ? '0' + d : (t == 'X' ? 'A' : 'a') + d - 10));
    m /= static_cast<unsigned>(base);
  } while (m);
  if (sp.grouping) digits = group_thousands(digits);
  std::string out;
  if (negative) out += '-';
  else if (sp.sign == '+' || sp.sign == ' ') out += sp.sign;
  if (sp.alternate && base != 10) out += t == 'X' ? "0X" : t == 'x' ? "0x" : t == 'o' ? "0o" : "0b";
  out += digits;
  return out;
}

std::string format_float(double v, const spec& sp) {
  char t = sp.type;
  if (!std::isfinite(v)) {
    std::string body = std::isnan(v) ? "nan" : "inf";
    if (t == 'F' || t == 'E' || t == 'G') body = std::isnan(v) ? "NAN" : "INF";
    const bool negative = std::signbit(v) && !std::isnan(v);
    return (negative ? "-" : sp.sign == '+' ? "+" : sp.sign == ' ' ? " " : "") + body + (t == '%' ? "%" : "");
  }
  if (!t && sp.precision < 0) {
    std::string body = py_float_repr(v);
    if (sp.sign != '-' && !std::signbit(v)) body = std::string(1, sp.sign) + body;
    return body;
  }
  double x = v;
  std::string suffix;
  if (t == '%') {
    x *= 100;
    t = 'f';
    suffix = "%";
  }
  if (!t) t = 'g';
  const long long prec = sp.precision < 0 ? 6 : sp.precision;
  std::string fmt = "%";
  if (sp.sign == '+') fmt += '+';
  else if (sp.sign == ' ') fmt += ' ';
  if (sp.alternate) fmt += '#';
  fmt += ".*";
  fmt += t;
  const int n = std::snprintf(nullptr, 0, fmt.c_str(), static_cast<int>(prec), x);
  if (n < 0 || static_cast<std::size_t>(n) > max_string_bytes) raise("formatted number is too long");
  std::string out(static_cast<std::size_t>(n) + 1, '\0');
  std::snprintf(out.data(), out.size(), fmt.c_str(), static_cast<int>(prec), x);
  out.pop_back();
  return out + suffix;
}

spec parse_spec(std::string_view s) {
  spec sp;
  std::size_t i = 0;
  const std::u32string chars = to_u32(s);
  // [[fill]align]
  auto is_align = [](char32_t c) { return c == '<' || c == '>' || c == '^' || c == '='; };
  if (chars.size() >= 2 && is_align(chars[1])) {
    sp.fill = chars.substr(0, 1);
    sp.align = static_cast<char>(chars[1]);
    i = byte_offset(s, 2);
  } else if (!chars.empty() && is_align(chars[0])) {
    sp.align = static_cast<char>(chars[0]);
    i = 1;
  }
  if (i < s.size() && (s[i] == '+' || s[i] == '-' || s[i] == ' ')) sp.sign = s[i++];
  if (i < s.size() && s[i] == '#') {
    sp.alternate = true;
    ++i;
  }
  if (i < s.size() && s[i] == '0') {
    sp.zero = true;
    ++i;
  }
  if (i < s.size() && s[i] >= '0' && s[i] <= '9') sp.width = read_number(s, i);
  if (i < s.size() && (s[i] == ',' || s[i] == '_')) {
    sp.grouping = s[i] == ',';
    ++i;
  }
  if (i < s.size() && s[i] == '.') {
    ++i;
    if (i >= s.size() || s[i] < '0' || s[i] > '9') raise("Format specifier missing precision");
    sp.precision = read_number(s, i);
  }
  if (i < s.size()) sp.type = s[i++];
  if (i < s.size()) raise("Invalid format specifier '" + std::string(s) + "'");
  if (sp.zero && !sp.align) {
    sp.fill = U"0";
    sp.align = '=';
  }
  return sp;
}

}  // namespace

std::string format_with_spec(const value& v, std::string_view spec_text) {
  const spec sp = parse_spec(spec_text);
  if (v.is_string() || v.is_undefined()) {
    if (sp.type && sp.type != 's') raise(std::string("Unknown format code '") + sp.type + "' for object of type 'str'");
    std::string body = py_str(v);
    if (sp.precision >= 0) body = body.substr(0, byte_offset(body, static_cast<std::size_t>(sp.precision)));
    return pad(std::move(body), sp, '<');
  }
  if (v.is_integral() && !(v.is_bool() && !sp.type && spec_text.empty())) {
    if (sp.type == 'c') {
      std::string body;
      const std::int64_t c = v.as_int();
      if (c < 0 || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) raise("%c arg not in range(0x110000)");
      append_char(body, static_cast<char32_t>(c));
      return pad(std::move(body), sp, '<');
    }
    if (sp.type && std::string_view("eEfFgG%").find(sp.type) != std::string_view::npos)
      return pad(format_float(v.as_float(), sp), sp, '>');
    if (sp.type && std::string_view("dxXobn").find(sp.type) == std::string_view::npos)
      raise(std::string("Unknown format code '") + sp.type + "' for object of type 'int'");
    if (v.is_bool() && !sp.type && sp.width < 0) return py_str(v);
    return pad(format_int(v.as_int(), sp), sp, '>');
  }
  if (v.is_float()) {
    if (sp.type && std::string_view("eEfFgG%").find(sp.type) == std::string_view::npos)
      raise(std::string("Unknown format code '") + sp.type + "' for object of type 'float'");
    return pad(format_float(v.as_float(), sp), sp, '>');
  }
  if (!spec_text.empty()) raise("unsupported format string passed to " + type_name(v) + ".__format__");
  return py_str(v);
}

std::string brace_format(std::string_view fmt, const call_args& args) {
  std::string out;
  std::size_t auto_index = 0;
  bool used_auto = false, used_manual = false;
  for (std::size_t i = 0; i < fmt.size();) {
    const char c = fmt[i];
    if (c == '}') {
      if (i + 1 < fmt.size() && fmt[i + 1] == '}') {
        out.push_back('}');
        i += 2;
        continue;
      }
      raise("Single '}' encountered in format string");
    }
    if (c != '{') {
      out.push_back(c);
      ++i;
      continue;
    }
    if (i + 1 < fmt.size() && fmt[i + 1] == '{') {
      out.push_back('{');
      i += 2;
      continue;
    }
    const std::size_t close = fmt.find('}', i);
    if (close == std::string_view::npos) raise("expected '}' before end of string");
    std::string_view field = fmt.substr(i + 1, close - i - 1);
    if (field.find('{') != std::string_view::npos) raise("nested replacement fields are not supported");
    std::string_view spec_text, conversion;
    if (const std::size_t colon = field.find(':'); colon != std::string_view::npos) {
      spec_text = field.substr(colon + 1);
      field = field.substr(0, colon);
    }
    if (const std::size_t bang = field.find('!'); bang != std::string_view::npos) {
      conversion = field.substr(bang + 1);
      field = field.substr(0, bang);
    }
    if (field.find_first_of(".[") != std::string_view::npos)
      raise("attribute and index lookups in format fields are not supported");
    const value* arg = nullptr;
    if (field.empty()) {
      if (used_manual) raise("cannot switch from manual field specification to automatic field numbering");
      used_auto = true;
      if (auto_index >= args.positional.size()) raise("Replacement index " + std::to_string(auto_index) + " out of range for positional args tuple");
      arg = &args.positional[auto_index++];
    } else if (field.find_first_not_of("0123456789") == std::string_view::npos) {
      if (used_auto) raise("cannot switch from automatic field numbering to manual field specification");
      used_manual = true;
      std::size_t k = 0;
      const long long n = read_number(field, k);
      if (n >= static_cast<long long>(args.positional.size()))
        raise("Replacement index " + std::string(field) + " out of range for positional args tuple");
      arg = &args.positional[static_cast<std::size_t>(n)];
    } else {
      arg = args.keyword(field);
      if (!arg) raise("KeyError: " + py_repr_string(field));
    }
    value shown = *arg;
    if (conversion == "r" || conversion == "a") shown = value::string(py_repr(*arg));
    else if (conversion == "s") shown = value::string(py_str(*arg));
    else if (!conversion.empty()) raise("Unknown conversion specifier " + std::string(conversion));
    out += format_with_spec(shown, spec_text);
    if (out.size() > max_string_bytes) raise("formatted string exceeds the limit of " + std::to_string(max_string_bytes) + " bytes");
    i = close + 1;
  }
  return out;
}

std::string percent_format(std::string_view fmt, const value& args) {
  std::vector<value> list;
  const bool mapping = args.is_dict();
  // Python treats any non-tuple argument with __getitem__ (a list too) as a possible mapping and
  // then does not complain about arguments left unused.
  const bool mapping_like = mapping || args.is_undefined() || (args.type() == kind::list && args.items().indexable());
  if (args.type() == kind::tuple) list = args.items().items;
  else list.push_back(args);
  std::size_t next = 0;
  std::string out;
  auto take = [&]() -> const value& {
    if (next >= list.size()) raise("not enough arguments for format string");
    return list[next++];
  };
  bool used_mapping = false;
  for (std::size_t i = 0; i < fmt.size();) {
    if (fmt[i] != '%') {
      out.push_back(fmt[i++]);
      continue;
    }
    ++i;
    if (i >= fmt.size()) raise("incomplete format");
    const value* named = nullptr;
    if (fmt[i] == '(') {
      const std::size_t close = fmt.find(')', i);
      if (close == std::string_view::npos) raise("incomplete format key");
      if (!mapping) raise("format requires a mapping");
      const std::string key(fmt.substr(i + 1, close - i - 1));
      named = args.dict().find(std::string_view(key));
      if (!named) raise("KeyError: " + py_repr_string(key));
      used_mapping = true;
      i = close + 1;
    }
    spec sp;
    sp.align = '>';
    while (i < fmt.size() && std::string_view("-+ #0").find(fmt[i]) != std::string_view::npos) {
      const char f = fmt[i++];
      if (f == '-') sp.align = '<';
      else if (f == '+') sp.sign = '+';
      else if (f == ' ' && sp.sign != '+') sp.sign = ' ';
      else if (f == '#') sp.alternate = true;
      else if (f == '0') sp.zero = true;
    }
    if (i < fmt.size() && fmt[i] == '*') {
      const value& w = take();
      if (!w.is_integral()) raise("* wants int");
      sp.width = w.as_int();
      if (sp.width < 0) {
        sp.align = '<';
        sp.width = sp.width == INT64_MIN ? INT64_MAX : -sp.width;
      }
      if (sp.width > static_cast<long long>(max_string_bytes)) raise("format width is over the limit of " + std::to_string(max_string_bytes));
      ++i;
    } else {
      sp.width = read_number(fmt, i);
      if (sp.width == 0) sp.width = -1;
    }
    if (i < fmt.size() && fmt[i] == '.') {
      ++i;
      if (i < fmt.size() && fmt[i] == '*') {
        const value& p = take();
        if (!p.is_integral()) raise("* wants int");
        sp.precision = p.as_int();
        if (sp.precision > static_cast<long long>(max_string_bytes)) raise("format precision is over the limit of " + std::to_string(max_string_bytes));
        ++i;
      } else {
        sp.precision = read_number(fmt, i);
      }
    }
    while (i < fmt.size() && (fmt[i] == 'h' || fmt[i] == 'l' || fmt[i] == 'L')) ++i;
    if (i >= fmt.size()) raise("incomplete format");
    const char conv = fmt[i++];
    if (conv == '%') {
      out.push_back('%');
      continue;
    }
    const value& arg = named ? *named : (mapping ? args : take());
    if (sp.zero && sp.align == '>') {
      sp.fill = U"0";
      sp.align = '=';
    }
    std::string body;
    switch (conv) {
      case 's': body = py_str(arg); break;
      case 'r':
      case 'a': body = py_repr(arg); break;
      case 'd':
      case 'i':
      case 'u':
        if (arg.is_float()) {
          if (!std::isfinite(arg.as_float())) raise("cannot convert float infinity or NaN to integer");
          const double t = std::trunc(arg.as_float());
          if (t < -9.2e18 || t > 9.2e18) raise("integer result does not fit in 64 bits (mii's integers are 64-bit)");
          body = format_int(static_cast<std::int64_t>(t), sp);
        } else if (arg.is_integral()) {
          body = format_int(arg.as_int(), sp);
        } else {
          raise(std::string("%") + conv + " format: a real number is required, not " + type_name(arg));
        }
        if (sp.precision > 0 && sp.precision <= 1000) {
          // %.5d pads the digits with zeros.
          const bool neg = !body.empty() && (body[0] == '-' || body[0] == '+' || body[0] == ' ');
          std::string digits = body.substr(neg ? 1 : 0);
          if (static_cast<long long>(digits.size()) < sp.precision)
            digits.insert(0, static_cast<std::size_t>(sp.precision) - digits.size(), '0');
          body = (neg ? body.substr(0, 1) : "") + digits;
        }
        break;
      case 'x':
      case 'X':
      case 'o': {
        if (!arg.is_integral()) raise(std::string("%") + conv + " format: an integer is required, not " + type_name(arg));
        spec s2 = sp;
        s2.type = conv;
        body = format_int(arg.as_int(), s2);
        break;
      }
      case 'e':
      case 'E':
      case 'f':
      case 'F':
      case 'g':
      case 'G': {
        if (!arg.is_number()) raise("must be real number, not " + type_name(arg));
        spec s2 = sp;
        s2.type = conv;
        if (s2.precision < 0) s2.precision = 6;
        body = format_float(arg.as_float(), s2);
        break;
      }
      case 'c':
        if (arg.is_string() && char_count(arg.str()) == 1) body = arg.str();
        else if (arg.is_integral() && arg.as_int() >= 0 && arg.as_int() <= 0x10FFFF && !(arg.as_int() >= 0xD800 && arg.as_int() <= 0xDFFF))
          append_char(body, static_cast<char32_t>(arg.as_int()));
        else raise("%c requires int or char");
        break;
      default: raise(std::string("unsupported format character '") + conv + "'");
    }
    if ((conv == 's' || conv == 'r' || conv == 'a') && sp.precision >= 0)
      body = body.substr(0, byte_offset(body, static_cast<std::size_t>(sp.precision)));
    if (conv == 's' || conv == 'r' || conv == 'a' || conv == 'c') {
      sp.fill = U" ";
      if (sp.align == '=') sp.align = '>';
    }
    out += pad(std::move(body), sp, '>');
    if (out.size() > max_string_bytes) raise("formatted string exceeds the limit of " + std::to_string(max_string_bytes) + " bytes");
  }
  if (!mapping_like && next < list.size()) raise("not all arguments converted during string formatting");
  (void)used_mapping;
  return out;
}

}  // namespace mii::detail::jinja
