// architecture<Policies...>: an architecture written as a list of layer policies.
//
//   struct mistral : architecture<hf_name<"MistralForCausalLM">, norm<rms_norm>, rotary<rope::neox>,
//                                 attention<gqa, window::sliding>, mlp<gated<silu>>,
//                                 block<pre_norm_sequential>, weights<llama_naming>> {};
//
// Each wrapper below marks its category; Boost.Hana finds the one policy of each category in the
// list (missing optional ones take their defaults, duplicates are a compile error). The result is
// a set of compile-time traits (`traits`, used to pick kernels) and a run-time description
// (`describe()`) that the loader checks config.json against.
#pragma once
#include <algorithm>
#include <array>
#include <cstddef>
#include <span>
#include <string_view>
#include <type_traits>

#include <boost/hana/filter.hpp>
#include <boost/hana/length.hpp>
#include <boost/hana/front.hpp>
#include <boost/hana/tuple.hpp>
#include <boost/hana/type.hpp>

#include <mii/layers/policies.hpp>
#include <mii/model/weight_names.hpp>

namespace mii::model {

template <std::size_t N>
struct fixed_string {
  char data[N]{};
  constexpr fixed_string(const char (&s)[N]) { std::copy_n(s, N, data); }
  constexpr std::string_view view() const { return {data, N - 1}; }
};

// ---- policy wrappers (one per category) --------------------------------------------------------
struct hf_name_tag {};
struct hf_model_type_tag {};
struct norm_tag {};
struct rotary_tag {};
struct attention_tag {};
struct mlp_tag {};
struct block_tag {};
struct embeddings_tag {};
struct soft_capping_tag {};
struct weights_tag {};

// The `architectures` strings of config.json this type serves.
template <fixed_string... Names>
struct hf_name : hf_name_tag {
  static constexpr std::array<std::string_view, sizeof...(Names)> names{Names.view()...};
};
// The `model_type` strings of config.json this type serves: what transformers' Auto classes
// dispatch on, so mii::pipeline(path) falls back to them when `architectures` is missing or names
// a class of its own (e.g. a fine-tuning wrapper). Optional: none by default.
template <fixed_string... Names>
struct hf_model_type : hf_model_type_tag {
  static constexpr std::array<std::string_view, sizeof...(Names)> names{Names.view()...};
};
template <class Kind> struct norm : norm_tag { using type = Kind; };
template <class Style> struct rotary : rotary_tag { using type = Style; };
template <class Heads, class Window = layers::window::none, class Bias = layers::bias::none,
          class QkNorm = layers::qk_norm::none>
struct attention : attention_tag {
  using heads = Heads;
  using window = Window;
  using bias = Bias;
  using qk_norm = QkNorm;  // per-head q/k norms (layers::qk_norm)
};
template <class Mlp> struct mlp : mlp_tag { using type = Mlp; };
template <class Wiring> struct block : block_tag { using type = Wiring; };
template <class Embedding> struct embeddings : embeddings_tag { using type = Embedding; };
// Which soft-caps (x -> cap * tanh(x / cap)) the architecture applies when config.json sets them.
template <class Which> struct soft_capping : soft_capping_tag { using type = Which; };
template <class Naming> struct weights : weights_tag { static constexpr const weight_names& names = Naming::value; };

// Everything the non-template loader needs to know about an architecture, as plain values.
struct arch_description {
  std::string_view type_name;               // e.g. "mii::models::mistral"
  std::span<const std::string_view> hf_names;
  std::span<const std::string_view> hf_model_types;
  layers::norm_kind norm;
  layers::rotary_style rotary;
  bool sliding_window_allowed;
  bool qkv_bias, o_bias, bias_from_config;
  layers::mlp_kind mlp;
  layers::activation act;
  std::span<const std::string_view> act_hf_names;
  layers::wiring wiring;
  bool wiring_from_config;
  bool learned_positions;
  int position_offset;
  bool attn_softcap_allowed, final_softcap_allowed;
  const weight_names* names;
  bool qk_norm;                             // per-head q/k RMSNorm (layers::qk_norm)
  int qk_norm_offset;                       // ... multiplying by (offset + w)
  // Mixture of experts: the router and shared-expert policies' decisions from a config.
  bool (*renormalise_topk)(const io::hf_config&);
  std::int64_t (*shared_expert_size)(const io::hf_config&);
  bool shared_expert, shared_expert_gated;
};

namespace detail {
template <class Tag, class Default, class... Policies>
constexpr auto find_policy() {
  namespace hana = boost::hana;
  constexpr auto found = hana::filter(hana::tuple_t<Policies...>, [](auto t) {
    return hana::bool_c<std::is_base_of_v<Tag, typename decltype(t)::type>>;
  });
  constexpr std::size_t count = decltype(hana::length(found))::value;
  static_assert(count <= 1, "an architecture lists two policies of one category");
  if constexpr (count == 0) {
    static_assert(!std::is_void_v<Default>, "an architecture is missing a required policy category");
    return hana::type_c<Default>;
  } else {
    return hana::front(found);
  }
}
template <class Tag, class Default, class... Policies>
using policy_t = typename decltype(find_policy<Tag, Default, Policies...>())::type;

// The router and shared-expert policies of an MoE MLP; Mixtral's defaults for other MLPs.
template <class Mlp>
struct moe_policies {
  using router = layers::router::softmax_topk;
  using shared = layers::shared_expert::none;
};
template <class Expert, class Router, class Shared>
struct moe_policies<layers::moe<Expert, Router, Shared>> {
  using router = Router;
  using shared = Shared;
};
}  // namespace detail

template <class... Policies>
struct architecture {
  using names_policy = detail::policy_t<hf_name_tag, void, Policies...>;
  using model_type_policy = detail::policy_t<hf_model_type_tag, hf_model_type<>, Policies...>;
  using norm_policy = detail::policy_t<norm_tag, void, Policies...>;
  using rotary_policy = detail::policy_t<rotary_tag, rotary<layers::rope::neox>, Policies...>;
  using attention_policy = detail::policy_t<attention_tag, attention<layers::gqa>, Policies...>;
  using mlp_policy = detail::policy_t<mlp_tag, void, Policies...>;
  using block_policy = detail::policy_t<block_tag, block<layers::pre_norm_sequential>, Policies...>;
  using embeddings_policy = detail::policy_t<embeddings_tag, embeddings<layers::token_embedding>, Policies...>;
  using soft_capping_policy = detail::policy_t<soft_capping_tag, soft_capping<layers::softcap::none>, Policies...>;
  using weights_policy = detail::policy_t<weights_tag, void, Policies...>;

  // Compile-time traits: what kernels and code paths this architecture instantiates.
  struct traits {
    using norm = typename norm_policy::type;
    using rotary = typename rotary_policy::type;
    using window = typename attention_policy::window;
    using bias = typename attention_policy::bias;
    using qk_norm = typename attention_policy::qk_norm;
    using mlp = typename mlp_policy::type;
    using router = typename detail::moe_policies<mlp>::router;
    using shared_expert = typename detail::moe_policies<mlp>::shared;
    using act = typename mlp::act;
    using wiring = typename block_policy::type;
    using embedding = typename embeddings_policy::type;
    using softcap = typename soft_capping_policy::type;
    static constexpr layers::norm_kind norm_kind = norm::kind;
    static constexpr layers::rotary_style rotary_style = rotary::style;
    static constexpr layers::mlp_kind mlp_kind = mlp::kind;
    static constexpr layers::activation activation = act::kind;
    static constexpr const weight_names& names = weights_policy::names;
  };

  static constexpr std::span<const std::string_view> hf_names() { return names_policy::names; }
  static constexpr std::span<const std::string_view> hf_model_types() { return model_type_policy::names; }

  static arch_description describe(std::string_view type_name) {
    using t = traits;
    return arch_description{
        .type_name = type_name,
        .hf_names = names_policy::names,
        .hf_model_types = model_type_policy::names,
        .norm = t::norm_kind,
        .rotary = t::rotary_style,
        .sliding_window_allowed = t::window::enabled,
        .qkv_bias = t::bias::on_qkv,
        .o_bias = t::bias::on_o,
        .bias_from_config = t::bias::from_config,
        .mlp = t::mlp_kind,
        .act = t::activation,
        .act_hf_names = t::act::hf,
        .wiring = t::wiring::kind,
        .wiring_from_config = t::wiring::from_config,
        .learned_positions = t::embedding::has_positions,
        .position_offset = t::embedding::position_offset,
        .attn_softcap_allowed = t::softcap::scores,
        .final_softcap_allowed = t::softcap::logits,
        .names = &t::names,
        .qk_norm = t::qk_norm::enabled,
        .qk_norm_offset = t::qk_norm::weight_offset,
        .renormalise_topk = &t::router::renormalise,
        .shared_expert_size = &t::shared_expert::size,
        .shared_expert = t::shared_expert::enabled,
        .shared_expert_gated = t::shared_expert::gated,
    };
  }
};

}  // namespace mii::model
