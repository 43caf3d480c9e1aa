// Macros ({% macro %}) and call-block bodies (`caller`): binding arguments as jinja2's Macro
// does (defaults evaluated at the call, extra arguments only when the body reads varargs or
// kwargs), a scope per call whose parent is the scope the macro was defined in.
#include "chat/evaluator.hpp"

namespace mii::detail::jinja {
namespace {

// A macro ({% macro %}) or the body of a {% call %} block (`caller` inside the macro it calls).
class macro_fn final : public callable {
 public:
  macro_fn(const stmt& def, scope* closure, bool is_caller) : def_(def), closure_(closure), is_caller_(is_caller) {}

  value call(evaluator& ev, call_args& args) const override {
    evaluator::call_guard guard(ev);
    const std::string name = is_caller_ ? "caller" : def_.name;
    scope* sc = ev.new_scope(closure_);
    const std::size_t n = def_.params.size();
    std::vector<const value*> bound(n, nullptr);
    if (args.positional.size() > n && !def_.uses_varargs)
      raise("macro '" + name + "' takes not more than " + std::to_string(n) + " argument(s)");
    for (std::size_t i = 0; i < n && i < args.positional.size(); ++i) bound[i] = &args.positional[i];
    auto extra_kwargs = std::make_shared<dict_data>();
    const value* caller = nullptr;
    for (const auto& [k, v] : args.keywords) {
      std::size_t i = 0;
      while (i < n && def_.params[i].name != k) ++i;
      if (i < n) {
        if (bound[i]) raise("macro '" + name + "' got multiple values for argument '" + k + "'");
        bound[i] = &v;
      } else if (k == "caller" && def_.uses_caller) {
        caller = &v;
      } else if (def_.uses_kwargs) {
        extra_kwargs->set(value::string(k), v);
      } else {
        raise("macro '" + name + "' takes no keyword argument '" + k + "'");
      }
    }
    for (std::size_t i = 0; i < n; ++i) {
      const parameter& p = def_.params[i];
      if (bound[i]) {
        sc->set(p.name, *bound[i]);
      } else if (p.default_value) {
        sc->set(p.name, ev.eval(*p.default_value, sc));  // defaults may use earlier parameters
      } else {
        auto info = std::make_shared<undefined_info>();
        info->hint = "parameter '" + p.name + "' was not provided";
        sc->set(p.name, value::undefined(std::move(info)));
      }
    }
    if (def_.uses_varargs) {
      std::vector<value> rest;
      for (std::size_t i = n; i < args.positional.size(); ++i) rest.push_back(args.positional[i]);
      sc->set("varargs", value::tuple(std::move(rest)));
    }
    if (def_.uses_kwargs) sc->set("kwargs", value::dict(extra_kwargs));
    if (def_.uses_caller) {
      if (caller) {
        sc->set("caller", *caller);
      } else {
        auto info = std::make_shared<undefined_info>();
        info->hint = "No caller defined";
        sc->set("caller", value::undefined(std::move(info)));
      }
    }
    std::string out = ev.render_body(def_.body, sc);
    ev.release_scope(sc);
    return value::string(std::move(out));
  }

  std::string repr() const override { return "<Macro '" + (is_caller_ ? std::string("caller") : def_.name) + "'>"; }

 private:
  const stmt& def_;
  scope* closure_;
  bool is_caller_;
};

}  // namespace

value make_macro(const stmt& definition, scope* closure, bool is_caller) {
  return value::function(std::make_shared<macro_fn>(definition, closure, is_caller));
}

}  // namespace mii::detail::jinja
