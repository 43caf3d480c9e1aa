#include "model/unused_tensors.hpp"

#include <charconv>
#include <vector>

#include <mii/error.hpp>
#include <mii/model/weight_names.hpp>

namespace mii::model {

bool ignorable_tensor(std::string_view name) { return name.ends_with(".inv_freq"); }

void refuse_unused_tensors(const arch_description& arch, const model_shape& s, const io::checkpoint& ckpt,
                           const std::set<std::string, std::less<>>& used) {
  std::vector<std::string_view> unused;
  for (std::string_view name : ckpt.names())
    if (!used.contains(name) && !ignorable_tensor(name)) unused.push_back(name);
  if (unused.empty()) return;

  // Layer tensors past num_hidden_layers: the config says fewer layers than the weights hold.
  const std::string_view prefix = arch.names->layer;  // e.g. "model.layers."
  std::int64_t layers_held = 0;
  std::string_view example;
  for (std::string_view name : unused) {
    if (prefix.empty() || !name.starts_with(prefix)) continue;
    const std::string_view rest = name.substr(prefix.size());
    std::int64_t layer = -1;
    const auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), layer);
    if (ec != std::errc() || end == rest.data() || *end != '.' || layer < s.layers) continue;
    if (layer + 1 > layers_held) {
      layers_held = layer + 1;
      example = name;
    }
  }
  if (layers_held > 0)
    fail(s.config_file.string(), ": field 'num_hidden_layers' is ", s.layers, " but the checkpoint in ",
         ckpt.root().string(), " holds tensors of ", layers_held, " layers (e.g. '", example,
         "'); a smaller num_hidden_layers would silently drop layers");

  std::string list;
  for (std::size_t i = 0; i < unused.size() && i < 5; ++i) list.append(i ? ", '" : "'").append(unused[i]).append("'");
  if (unused.size() > 5) list += ", ...";
  const io::tensor_view* first = ckpt.find(unused.front());
  fail(first && first->file ? first->file->string() : ckpt.root().string(), ": ", unused.size(),
       " tensor(s) that ", arch.type_name, " does not use with ", s.config_file.string(), ": ", list,
       " (config.json disagrees with the weights: a bias, a layout or an architecture it does not describe)");
}

}  // namespace mii::model
