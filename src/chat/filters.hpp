// jinja2's filters ({{ x | name(args) }}) and tests ({% if x is name(args) %}), looked up by name
// when a template is parsed. jinja2 rejects an unknown name at that point too; a name jinja2 knows
// but mii does not implement parses and fails only if it is reached (entry with a null function).
#pragma once
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "chat/value.hpp"

namespace mii::detail::jinja {

using filter_fn = value (*)(evaluator& ev, const value& input, call_args& args);
struct filter_entry {
  std::string_view name;
  filter_fn fn;  // null: a jinja2 filter mii does not implement
};
const filter_entry* find_filter(std::string_view name);

using test_fn = bool (*)(evaluator& ev, const value& v, call_args& args);
struct test_entry {
  std::string_view name;
  test_fn fn;
};
const test_entry* find_test(std::string_view name);

// Argument helpers shared by filters, tests and methods: Python's binding of positional and
// keyword arguments to named parameters, with the errors Python gives.
class arg_binder {
 public:
  arg_binder(std::string_view function, call_args& args, std::initializer_list<std::string_view> params);
  // The argument for parameter i (by position or keyword), or null when it was not given.
  const value* get(std::size_t i) const { return bound_[i]; }
  bool has(std::size_t i) const { return bound_[i] != nullptr; }
  const value& required(std::size_t i) const;
  std::int64_t integer(std::size_t i, std::int64_t fallback) const;
  bool flag(std::size_t i, bool fallback) const;
  std::string text(std::size_t i, std::string fallback) const;  // str() of the argument

 private:
  std::string function_;
  std::vector<std::string_view> params_;
  std::vector<const value*> bound_;
};

}  // namespace mii::detail::jinja
