// Every built-in architecture, and the registry mii::pipeline(path) dispatches over.
#pragma once
#include <boost/hana/tuple.hpp>
#include <boost/hana/type.hpp>

#include <mii/models/falcon.hpp>
#include <mii/models/llama.hpp>
#include <mii/models/mistral.hpp>
#include <mii/models/mixtral.hpp>
#include <mii/models/opt.hpp>
#include <mii/models/phi.hpp>
#include <mii/models/phi3.hpp>
#include <mii/models/qwen2.hpp>

namespace mii::models {
inline constexpr auto builtin = boost::hana::tuple_t<llama, mistral, qwen2, mixtral, phi3, falcon, opt, phi>;
}  // namespace mii::models
