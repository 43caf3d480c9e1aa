// Every built-in architecture, and the registry mii::pipeline(path) dispatches over.
#pragma once
#include <boost/hana/tuple.hpp>
#include <boost/hana/type.hpp>

#include <mii/models/falcon.hpp>
#include <mii/models/gemma2.hpp>
#include <mii/models/gemma3.hpp>
#include <mii/models/llama.hpp>
#include <mii/models/mistral.hpp>
#include <mii/models/mixtral.hpp>
#include <mii/models/opt.hpp>
#include <mii/models/phi.hpp>
#include <mii/models/phi3.hpp>
#include <mii/models/qwen2.hpp>
#include <mii/models/qwen2_moe.hpp>
#include <mii/models/qwen3.hpp>
#include <mii/models/qwen3_moe.hpp>

namespace mii::models {
inline constexpr auto builtin = boost::hana::tuple_t<llama, mistral, qwen2, mixtral, phi3, falcon, opt, phi, gemma2,
                                                      gemma3, qwen3, qwen3_moe, qwen2_moe>;
}  // namespace mii::models
