// The loader's last check of a checkpoint against its config: a tensor nothing reads means the
// config describes another model than the weights (num_hidden_layers too small, a bias the
// config turns off, another architecture's names), and loading it would run a different
// network without a word. Internal to src/model (called by plan_weights).
#pragma once
#include <functional>
#include <set>
#include <string>
#include <string_view>

#include <mii/io/safetensors.hpp>
#include <mii/model/architecture.hpp>
#include <mii/model/model_shape.hpp>

namespace mii::model {

// Tensors the loader may leave unread: buffers, not weights (rotary `inv_freq`, which
// transformers before 4.31 saved with the weights and recomputes anyway).
bool ignorable_tensor(std::string_view name);

// Throws mii::error when `ckpt` holds a tensor outside `used` that is not ignorable: for layers
// past num_hidden_layers it names the field and both layer counts; otherwise the tensors.
void refuse_unused_tensors(const arch_description& arch, const model_shape& shape, const io::checkpoint& ckpt,
                           const std::set<std::string, std::less<>>& used);

}  // namespace mii::model
