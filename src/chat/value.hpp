// The values a chat template computes with, modelled on the Python objects jinja2 hands around:
// None, bool, int, float, str, list, tuple, dict (insertion-ordered), jinja2's Undefined, its
// Namespace, loop contexts and callables (filters-as-methods, macros, globals). Printing and
// comparing follow Python (str(), repr(), ==, <), because that is what a template's output
// is checked against.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace mii::detail::jinja {

// Bounds on what one render may build, so that a hostile template or input cannot exhaust memory
// (docs/chat-templates.md lists them).
inline constexpr std::size_t max_string_bytes = std::size_t{16} << 20;  // any one string, the output too
inline constexpr std::size_t max_list_items = std::size_t{1} << 22;      // any one list or dict
inline constexpr int max_value_depth = 1000;  // lists in lists...: Python's recursion limit is about as deep

// An operation on values failed the way a Python TypeError/ValueError would; the evaluator adds
// the template position and turns it into a mii::error.
struct eval_failure {
  std::string message;
};
[[noreturn]] void raise(std::string message);
// Concatenates text. (GCC 12 warns, wrongly, about `"x" + std::string` chains: -Wrestrict.)
std::string cat(std::initializer_list<std::string_view> parts);

class value;
struct list_data;
struct dict_data;
struct namespace_data;
struct loop_state;
class callable;
class evaluator;
struct call_args;

// Why a value is undefined: what was looked up where, for the error raised when it is used.
struct undefined_info {
  std::string name;   // repr of the missing name, attribute or key
  std::string owner;  // "'dict object'" etc.; empty for a missing variable
  std::string hint;   // replaces the generated message when set
  bool unsafe = false;  // an attribute the sandbox refuses (calling it is a security error)
  bool element = false; // looked up with a non-string key ("has no element")
};

enum class kind : std::uint8_t {
  undefined, none, boolean, integer, floating, string, list, tuple, dict, namespace_, callable, loop
};

class value {
 public:
  struct undefined_t {
    std::shared_ptr<const undefined_info> info;
  };
  struct none_t {};
  using string_ptr = std::shared_ptr<const std::string>;
  using list_ptr = std::shared_ptr<list_data>;
  using dict_ptr = std::shared_ptr<dict_data>;
  using callable_ptr = std::shared_ptr<const callable>;

  value() = default;  // undefined
  static value undefined(std::shared_ptr<const undefined_info> info = nullptr) { return value(undefined_t{std::move(info)}); }
  static value missing(std::string name);  // an undefined variable
  static value none() { return value(none_t{}); }
  static value boolean(bool b) { return value(b); }
  static value integer(std::int64_t i) { return value(i); }
  static value floating(double d) { return value(d); }
  static value string(std::string s) { return value(std::make_shared<const std::string>(std::move(s))); }
  static value string(string_ptr s) { return value(std::move(s)); }
  static value list(std::vector<value> items);
  static value tuple(std::vector<value> items);
  static value dict(dict_ptr d) { return value(std::move(d)); }
  static value empty_dict();
  static value ns(namespace_data* n) { return value(n); }
  static value function(callable_ptr f) { return value(std::move(f)); }
  static value loop(std::shared_ptr<loop_state> l) { return value(std::move(l)); }

  kind type() const;
  bool is_undefined() const { return data_.index() == 0; }
  bool is_none() const { return data_.index() == 1; }
  bool is_bool() const { return data_.index() == 2; }
  bool is_int() const { return data_.index() == 3; }  // not bool
  bool is_float() const { return data_.index() == 4; }
  bool is_number() const { return data_.index() >= 2 && data_.index() <= 4; }  // bool, int, float
  bool is_integral() const { return data_.index() == 2 || data_.index() == 3; }  // bool or int
  bool is_string() const { return data_.index() == 5; }
  bool is_sequence_like() const { return data_.index() == 6; }  // list or tuple
  bool is_dict() const { return data_.index() == 7; }
  bool is_namespace() const { return data_.index() == 8; }
  bool is_callable() const { return data_.index() == 9; }
  bool is_loop() const { return data_.index() == 10; }

  bool as_bool() const { return std::get<bool>(data_); }
  // bool or int as an integer (Python's bool is an int).
  std::int64_t as_int() const { return is_bool() ? std::get<bool>(data_) : std::get<std::int64_t>(data_); }
  // Any number as a float.
  double as_float() const;
  const std::string& str() const { return *std::get<string_ptr>(data_); }
  const string_ptr& str_ptr() const { return std::get<string_ptr>(data_); }
  list_data& items() const { return *std::get<list_ptr>(data_); }
  dict_data& dict() const { return *std::get<dict_ptr>(data_); }
  namespace_data& ns_data() const { return *std::get<namespace_data*>(data_); }
  const callable& fn() const { return *std::get<callable_ptr>(data_); }
  loop_state& loop_data() const { return *std::get<std::shared_ptr<loop_state>>(data_); }
  const std::shared_ptr<loop_state>& loop_ptr() const { return std::get<std::shared_ptr<loop_state>>(data_); }
  // True when nothing else holds this list (a temporary): its items can be moved out.
  bool sole_list_owner() const { return std::get<list_ptr>(data_).use_count() == 1; }
  const undefined_info* undefined_why() const { return std::get<undefined_t>(data_).info.get(); }
  // Identity, for `is sameas` and for printing self-containing namespaces.
  const void* identity() const;

 private:
  template <class T>
  explicit value(T v) : data_(std::move(v)) {}
  std::variant<undefined_t, none_t, bool, std::int64_t, double, string_ptr, list_ptr, dict_ptr, namespace_data*,
               callable_ptr, std::shared_ptr<loop_state>>
      data_;
};

// What a list-like value really is in Python, besides a plain list or tuple: it decides how it
// prints, whether it has a length and an index, and whether it can be iterated twice.
enum class list_view : std::uint8_t {
  plain,
  dict_keys, dict_values, dict_items,  // d.keys() ...: no index
  range,                               // range(): prints as range(a, b)
  iterator,  // a generator or iterator (|select, |map, |reverse...): always true, no length, one pass
};

struct list_data {
  std::vector<value> items;
  bool tuple = false;
  list_view view = list_view::plain;
  std::int64_t range_start = 0, range_stop = 0, range_step = 1;  // view == range
  std::string_view iterator_type;  // view == iterator: "generator", "list_reverseiterator"...
  std::string_view iterator_name;  // view == iterator: the generator function, e.g. "sync_do_map"
  // view == iterator: a generator's body, run when it is first iterated (Python generators are
  // lazy: `5|map('upper')` fails only when something consumes it). Null once run.
  std::function<std::vector<value>()> produce;

  bool indexable() const { return view == list_view::plain || view == list_view::range; }
};

// A one-pass iterator over `items`, as jinja2's generator filters return.
value make_iterator(std::vector<value> items, std::string_view type, std::string_view name = {});
// A generator whose items `produce` computes when it is first iterated.
value make_generator(std::function<std::vector<value>()> produce, std::string_view name);

// An insertion-ordered dict, as Python's. Keys are hashable values (str, int, float, bool, None,
// tuples of those); 1, 1.0 and True are the same key, as in Python.
struct dict_data {
  std::vector<std::pair<value, value>> entries;

  const value* find(const value& key) const;
  const value* find(std::string_view key) const;
  // Replaces the value of an existing key in place (keeping its position) or appends.
  void set(value key, value v);
};

// jinja2's namespace(): the one mutable object a template can make ({% set ns.x = ... %}).
// Owned by the render (an arena), since a namespace may contain itself.
struct namespace_data {
  dict_data attrs;
};

// The `loop` variable of one {% for %}: its items (after the loop's `if` filter) and position.
// Shared ownership: a template may keep a loop in a namespace after the loop ends. It cannot
// form a cycle, since its items exist before it does.
struct loop_state {
  std::vector<value> items;
  std::size_t index0 = 0;
};

struct call_args {
  std::vector<value> positional;
  std::vector<std::pair<std::string, value>> keywords;

  const value* keyword(std::string_view name) const;
};

// Something a template can call: a global (range, namespace, raise_exception), a bound method
// ("abc".upper), a macro, loop.cycle.
class callable {
 public:
  virtual ~callable() = default;
  virtual value call(evaluator& ev, call_args& args) const = 0;
  // What print() shows, e.g. "<Macro 'name'>".
  virtual std::string repr() const = 0;
};

// Counts the depth of a recursive walk over nested values (printing, ==, tojson) and fails past
// max_value_depth, as Python's RecursionError would, instead of overflowing the stack.
class value_depth_guard {
 public:
  value_depth_guard();
  ~value_depth_guard();
  value_depth_guard(const value_depth_guard&) = delete;
  value_depth_guard& operator=(const value_depth_guard&) = delete;
};

// Python semantics.
bool truthy(const value& v);
std::string type_name(const value& v);  // "int", "str", "dict", "NoneType", "Undefined"...
std::string py_str(const value& v);     // str(v); Undefined prints as ""
std::string py_repr(const value& v);    // repr(v)
std::string py_float_repr(double d);    // repr(float): shortest round-trip, Python's layout
bool py_equal(const value& a, const value& b);
// a op b for op in == != < <= > >=; ordering raises for unorderable types as Python does.
bool py_compare(const value& a, const value& b, std::string_view op);
inline bool py_less(const value& a, const value& b) { return py_compare(a, b, "<"); }
bool is_hashable(const value& v);
// Throws the error jinja2 raises when an Undefined is used (printing and truth tests are fine).
[[noreturn]] void fail_undefined(const value& v);
std::string undefined_message(const value& v);

// Python iteration: str yields characters, dict its keys, Undefined nothing; others raise.
std::vector<value> iterate(const value& v);
// len(); raises for values without a length.
std::int64_t py_len(const value& v);

// Integer arithmetic that fails (rather than wrapping) past 64 bits.
std::int64_t checked_add(std::int64_t a, std::int64_t b);
std::int64_t checked_sub(std::int64_t a, std::int64_t b);
std::int64_t checked_mul(std::int64_t a, std::int64_t b);

}  // namespace mii::detail::jinja
