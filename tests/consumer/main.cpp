// The DESIGN.md example against an installed mii, specialized for Llama at compile time.
#include <iostream>

#include <mii/pipeline.hpp>
#include <mii_selected_model.hpp>

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: consumer MODEL_DIR\n";
    return 2;
  }
  auto pipe = mii::pipeline<mii::selected::model>(argv[1]);
  auto out = pipe({"DeepSpeed is", "Seattle is"}, {.max_new_tokens = 12, .do_sample = false});
  for (const mii::response& r : out) std::cout << r << '\n';
  return out.size() == 2 && out[0].generated_length > 0 ? 0 : 1;
}
