// The global functions a chat template can call: jinja2's range (with its sandbox's size limit),
// dict, namespace and joiner, and transformers' raise_exception and strftime_now.
#include <ctime>

#include <mii/chat.hpp>

#include "chat/evaluator.hpp"
#include "chat/filters.hpp"
#include "chat/limits.hpp"

namespace mii::detail::jinja {
namespace {

template <class F>
class global_fn final : public callable {
 public:
  global_fn(std::string name, F f) : name_(std::move(name)), f_(std::move(f)) {}
  value call(evaluator& ev, call_args& args) const override { return f_(ev, args); }
  std::string repr() const override { return "<function " + name_ + ">"; }

 private:
  std::string name_;
  F f_;
};

template <class F>
value make_global(std::string name, F f) {
  return value::function(std::make_shared<global_fn<F>>(std::move(name), std::move(f)));
}

std::int64_t range_arg(const value& v) {
  if (!v.is_integral()) raise(cat({"'", type_name(v), "' object cannot be interpreted as an integer"}));
  return v.as_int();
}

value range(evaluator&, call_args& args) {
  if (!args.keywords.empty()) raise("range() takes no keyword arguments");
  const auto n = args.positional.size();
  if (n == 0 || n > 3) raise("range expected 1 to 3 arguments, got " + std::to_string(n));
  std::int64_t start = 0, stop, step = 1;
  if (n == 1) {
    stop = range_arg(args.positional[0]);
  } else {
    start = range_arg(args.positional[0]);
    stop = range_arg(args.positional[1]);
    if (n == 3) step = range_arg(args.positional[2]);
  }
  if (step == 0) raise("range() arg 3 must not be zero");
  const __int128 span = step > 0 ? static_cast<__int128>(stop) - start : static_cast<__int128>(start) - stop;
  const __int128 abs_step = step > 0 ? step : -static_cast<__int128>(step);
  const __int128 length = span <= 0 ? 0 : (span - 1) / abs_step + 1;
  if (length > max_range)
    raise("Range too big. The sandbox blocks ranges larger than MAX_RANGE (" + std::to_string(max_range) + ").");
  std::vector<value> items;
  items.reserve(static_cast<std::size_t>(length));
  for (__int128 i = 0, x = start; i < length; ++i, x += step) items.push_back(value::integer(static_cast<std::int64_t>(x)));
  value r = value::list(std::move(items));
  list_data& l = r.items();
  l.view = list_view::range;
  l.range_start = start;
  l.range_stop = stop;
  l.range_step = step;
  return r;
}

// dict(mapping or pairs, **kwargs), as Python's dict constructor.
std::shared_ptr<dict_data> dict_from(evaluator& ev, call_args& args, const char* fn) {
  if (args.positional.size() > 1)
    raise(std::string(fn) + " expected at most 1 argument, got " + std::to_string(args.positional.size()));
  auto d = std::make_shared<dict_data>();
  if (!args.positional.empty()) {
    const value& src = args.positional[0];
    if (src.is_dict()) {
      *d = src.dict();
    } else {
      std::size_t index = 0;
      for (const value& pair : ev.items_of(src)) {
        if (!(pair.is_sequence_like() || pair.is_string()))
          raise("cannot convert dictionary update sequence element #" + std::to_string(index) + " to a sequence");
        const std::vector<value> kv = ev.items_of(pair);
        if (kv.size() != 2)
          raise("dictionary update sequence element #" + std::to_string(index) + " has length " +
                std::to_string(kv.size()) + "; 2 is required");
        if (!is_hashable(kv[0])) raise("unhashable type: '" + type_name(kv[0]) + "'");
        d->set(kv[0], kv[1]);
        ++index;
      }
    }
  }
  for (auto& [k, v] : args.keywords) d->set(value::string(k), v);
  return d;
}

value make_dict(evaluator& ev, call_args& args) { return value::dict(dict_from(ev, args, "dict")); }

value make_namespace(evaluator& ev, call_args& args) {
  namespace_data* ns = ev.new_namespace();
  ns->attrs = *dict_from(ev, args, "namespace");
  return value::ns(ns);
}

// joiner(sep): "" the first time it is called, then sep.
class joiner_fn final : public callable {
 public:
  explicit joiner_fn(std::string sep) : sep_(std::move(sep)) {}
  value call(evaluator&, call_args& args) const override {
    arg_binder("joiner", args, {});
    if (!used_) {
      used_ = true;
      return value::string("");
    }
    return value::string(sep_);
  }
  std::string repr() const override { return "<jinja2.utils.Joiner object>"; }

 private:
  std::string sep_;
  mutable bool used_ = false;  // one render, one thread
};

value make_joiner(evaluator&, call_args& args) {
  arg_binder a("joiner", args, {"sep"});
  return value::function(std::make_shared<joiner_fn>(a.text(0, ", ")));
}

value raise_exception(evaluator&, call_args& args) {
  arg_binder a("raise_exception", args, {"message"});
  throw chat_template_refused(a.has(0) ? py_str(*a.get(0)) : std::string());
}

// datetime.now().strftime(format): local time, through the C library as CPython does.
value strftime_now(evaluator&, call_args& args) {
  arg_binder a("strftime_now", args, {"format"});
  const value& f = a.required(0);
  if (!f.is_string()) raise("strftime() argument 1 must be str, not " + type_name(f));
  const std::string& format = f.str();
  if (format.size() > 4096) raise("strftime_now format is longer than 4096 bytes");
  if (format.empty()) return value::string("");
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  // strftime returns 0 both for "buffer too small" and for an empty result: grow, then give up.
  for (std::size_t size = 256; size <= 1 << 20; size *= 4) {
    std::string out(size, '\0');
    const std::size_t n = std::strftime(out.data(), out.size(), format.c_str(), &local);
    if (n > 0) {
      out.resize(n);
      return value::string(std::move(out));
    }
  }
  return value::string("");
}

}  // namespace

void install_globals(scope& globals) {
  globals.set("range", make_global("range", range));
  globals.set("dict", make_global("dict", make_dict));
  globals.set("namespace", make_global("namespace", make_namespace));
  globals.set("joiner", make_global("joiner", make_joiner));
  globals.set("raise_exception", make_global("raise_exception", raise_exception));
  globals.set("strftime_now", make_global("strftime_now", strftime_now));
}

}  // namespace mii::detail::jinja
