#include "chat/filters.hpp"

namespace mii::detail::jinja {

arg_binder::arg_binder(std::string_view function, call_args& args, std::initializer_list<std::string_view> params)
    : function_(function), params_(params), bound_(params.size(), nullptr) {
  if (args.positional.size() > params_.size())
    raise(function_ + "() takes at most " + std::to_string(params_.size()) + " argument(s) (" +
          std::to_string(args.positional.size()) + " given)");
  for (std::size_t i = 0; i < args.positional.size(); ++i) bound_[i] = &args.positional[i];
  for (const auto& [name, v] : args.keywords) {
    std::size_t i = 0;
    while (i < params_.size() && params_[i] != name) ++i;
    if (i == params_.size()) raise(function_ + "() got an unexpected keyword argument '" + name + "'");
    if (bound_[i]) raise(function_ + "() got multiple values for argument '" + name + "'");
    bound_[i] = &v;
  }
}

const value& arg_binder::required(std::size_t i) const {
  if (!bound_[i]) raise(function_ + "() missing required argument '" + std::string(params_[i]) + "'");
  return *bound_[i];
}

std::int64_t arg_binder::integer(std::size_t i, std::int64_t fallback) const {
  if (!bound_[i] || bound_[i]->is_none()) return fallback;
  if (!bound_[i]->is_integral())
    raise(cat({"'", type_name(*bound_[i]), "' object cannot be interpreted as an integer (argument '", params_[i],
               "' of ", function_, "())"}));
  return bound_[i]->as_int();
}

bool arg_binder::flag(std::size_t i, bool fallback) const { return bound_[i] ? truthy(*bound_[i]) : fallback; }

std::string arg_binder::text(std::size_t i, std::string fallback) const {
  return bound_[i] ? py_str(*bound_[i]) : std::move(fallback);
}

}  // namespace mii::detail::jinja
