// Attribute, item and slice access as jinja2's sandbox does them (sandbox.py getattr/getitem;
// slices bypass it), and the attributes of `loop`.
#include "chat/evaluator.hpp"
#include "chat/py_text.hpp"

namespace mii::detail::jinja {
namespace {

std::string owner_name(const value& v) {
  switch (v.type()) {
    case kind::none: return "None";
    case kind::namespace_: return "jinja2.utils.Namespace object";
    case kind::loop: return "jinja2.runtime.LoopContext object";
    default: return type_name(v) + " object";
  }
}

value missing_member(const value& owner, const value& key) {
  auto info = std::make_shared<undefined_info>();
  info->owner = owner_name(owner);
  info->name = py_repr(key);
  info->element = !key.is_string();
  return value::undefined(std::move(info));
}


// loop.cycle(a, b, ...): the argument at the current index, modulo their count.
class cycle_fn final : public callable {
 public:
  explicit cycle_fn(std::shared_ptr<loop_state> loop) : loop_(std::move(loop)) {}
  value call(evaluator&, call_args& args) const override {
    if (!args.keywords.empty()) raise("loop.cycle() takes no keyword arguments");
    if (args.positional.empty()) raise("no items for cycling given");
    return args.positional[loop_->index0 % args.positional.size()];
  }
  std::string repr() const override { return "<bound method LoopContext.cycle>"; }

 private:
  std::shared_ptr<loop_state> loop_;
};

value loop_attribute(const value& loop, const std::string& name, bool& found) {
  const loop_state& l = loop.loop_data();
  const auto n = static_cast<std::int64_t>(l.items.size());
  const auto i = static_cast<std::int64_t>(l.index0);
  found = true;
  if (name == "index") return value::integer(i + 1);
  if (name == "index0") return value::integer(i);
  if (name == "revindex") return value::integer(n - i);
  if (name == "revindex0") return value::integer(n - i - 1);
  if (name == "first") return value::boolean(i == 0);
  if (name == "last") return value::boolean(i == n - 1);
  if (name == "length") return value::integer(n);
  if (name == "depth") return value::integer(1);  // recursive loops are not supported
  if (name == "depth0") return value::integer(0);
  if (name == "previtem" || name == "nextitem") {
    const bool prev = name == "previtem";
    if (prev ? i > 0 : i + 1 < n) return l.items[static_cast<std::size_t>(prev ? i - 1 : i + 1)];
    auto info = std::make_shared<undefined_info>();
    info->hint = prev ? "there is no previous item" : "there is no next item";
    return value::undefined(std::move(info));
  }
  if (name == "cycle") {
    return value::function(std::make_shared<cycle_fn>(loop.loop_ptr()));
  }
  if (name == "changed") {
    auto info = std::make_shared<undefined_info>();
    info->hint = "loop.changed() is not supported by mii's template engine";
    return value::undefined(std::move(info));
  }
  found = false;
  return {};
}

// Python's slice index adjustment (PySlice_AdjustIndices), in 128-bit to avoid overflow.
struct slice_range {
  __int128 start, step, count;
};
slice_range adjust_slice(std::int64_t length, const value& start_v, const value& stop_v, const value& step_v) {
  const __int128 len = length;
  __int128 step = step_v.is_none() ? 1 : step_v.as_int();
  if (step == 0) raise("slice step cannot be zero");
  auto bound = [&](const value& v, bool is_start) -> __int128 {
    if (v.is_none()) {
      if (step > 0) return is_start ? 0 : len;
      return is_start ? len - 1 : -1;
    }
    __int128 x = v.as_int();
    if (x < 0) {
      x += len;
      if (x < 0) x = step < 0 ? -1 : 0;
    } else if (x >= len) {
      x = step < 0 ? len - 1 : len;
    }
    return x;
  };
  const __int128 start = bound(start_v, true), stop = bound(stop_v, false);
  __int128 count = 0;
  if (step < 0) {
    if (stop < start) count = (start - stop - 1) / (-step) + 1;
  } else if (start < stop) {
    count = (stop - start - 1) / step + 1;
  }
  return {start, step, count};
}

}  // namespace

// ---- sandboxed access -------------------------------------------------------------------------

value evaluator::attribute(const value& object, const std::string& name) {
  bool found = false;
  switch (object.type()) {
    case kind::undefined: fail_undefined(object);
    case kind::namespace_:
      if (const value* v = object.ns_data().attrs.find(std::string_view(name))) return *v;
      break;
    case kind::loop: {
      value v = loop_attribute(object, name, found);
      if (found) return v;
      break;
    }
    default: {
      // Python looks up an attribute (a method) first and falls back to a dict's key.
      value v = builtin_attribute(object, name, found);
      if (found) return v;
      if (object.is_dict())
        if (const value* item = object.dict().find(std::string_view(name))) return *item;
    }
  }
  return missing_member(object, value::string(name));
}

value evaluator::item(const value& object, const value& key) {
  switch (object.type()) {
    case kind::undefined: fail_undefined(object);
    case kind::dict:
      if (is_hashable(key))
        if (const value* v = object.dict().find(key)) return *v;
      break;
    case kind::list:
    case kind::tuple:
      if (key.is_integral() && object.items().indexable()) {
        const auto& items = object.items().items;
        std::int64_t i = key.as_int();
        const auto n = static_cast<std::int64_t>(items.size());
        if (i < 0) i += n;
        if (i >= 0 && i < n) return items[static_cast<std::size_t>(i)];
      }
      break;
    case kind::string:
      if (key.is_integral()) {
        const std::string& str = object.str();
        std::int64_t i = key.as_int();
        const auto n = static_cast<std::int64_t>(char_count(str));
        if (i < 0) i += n;
        if (i >= 0 && i < n) {
          const std::size_t b = byte_offset(str, static_cast<std::size_t>(i));
          const std::size_t e = byte_offset(std::string_view(str).substr(b), 1) + b;
          return value::string(str.substr(b, e - b));
        }
      }
      break;
    default: break;
  }
  // obj[key] failed: jinja2 then tries getattr(obj, key) when the key is a string.
  if (key.is_string()) {
    bool found = false;
    if (object.is_namespace()) {
      if (const value* v = object.ns_data().attrs.find(std::string_view(key.str()))) return *v;
    } else if (object.is_loop()) {
      value v = loop_attribute(object, key.str(), found);
      if (found) return v;
    } else {
      value v = builtin_attribute(object, key.str(), found);
      if (found) return v;
    }
  }
  return missing_member(object, key);
}

// obj[a:b:c] bypasses jinja2's sandboxed getitem: Python slices directly, so its errors surface.
value evaluator::slice(const value& object, const value& start, const value& stop, const value& step_v) {
  if (object.is_undefined()) fail_undefined(object);
  if (object.is_dict()) raise("unhashable type: 'slice'");
  if (!(object.is_string() || (object.is_sequence_like() && object.items().indexable())))
    raise("'" + type_name(object) + "' object is not subscriptable");
  for (const value* b : {&start, &stop, &step_v}) {
    if (b->is_undefined()) fail_undefined(*b);
    if (!(b->is_none() || b->is_integral())) raise("slice indices must be integers or None or have an __index__ method");
  }
  if (object.is_string()) {
    const std::string& str = object.str();
    if (is_ascii(str)) {
      const slice_range r = adjust_slice(static_cast<std::int64_t>(str.size()), start, stop, step_v);
      std::string out;
      out.reserve(static_cast<std::size_t>(r.count));
      for (__int128 i = 0, at = r.start; i < r.count; ++i, at += r.step) out.push_back(str[static_cast<std::size_t>(at)]);
      return value::string(std::move(out));
    }
    const std::u32string chars = to_u32(str);
    const slice_range r = adjust_slice(static_cast<std::int64_t>(chars.size()), start, stop, step_v);
    std::u32string out;
    for (__int128 i = 0, at = r.start; i < r.count; ++i, at += r.step) out.push_back(chars[static_cast<std::size_t>(at)]);
    return value::string(from_u32(out));
  }
  const list_data& l = object.items();
  const slice_range r = adjust_slice(static_cast<std::int64_t>(l.items.size()), start, stop, step_v);
  std::vector<value> out;
  out.reserve(static_cast<std::size_t>(r.count));
  for (__int128 i = 0, at = r.start; i < r.count; ++i, at += r.step) out.push_back(l.items[static_cast<std::size_t>(at)]);
  if (l.tuple) return value::tuple(std::move(out));
  value result = value::list(std::move(out));
  if (l.view == list_view::range) {
    // A slice of a range is a range: range(start + i*step, start + j*step, step*k).
    list_data& sliced = result.items();
    sliced.view = list_view::range;
    sliced.range_step = static_cast<std::int64_t>(l.range_step * r.step);
    sliced.range_start = static_cast<std::int64_t>(l.range_start + r.start * l.range_step);
    sliced.range_stop = static_cast<std::int64_t>(l.range_start + (r.start + r.count * r.step) * l.range_step);
  }
  return result;
}

}  // namespace mii::detail::jinja
