// The registry's pipelines are instantiated once each, in src/models/<name>.cpp, so that the
// eight architectures compile in parallel; src/pipeline.cpp only references them.
#pragma once
#include <mii/models/all.hpp>
#include <mii/pipeline.hpp>

#define MII_BUILTIN_PIPELINE(M)                                                                          \
  template ::mii::generation_pipeline mii::pipeline<M, ::mii::backend::automatic, ::mii::parallel::single>( \
      const std::filesystem::path&, const ::mii::model_config&, ::mii::parallel::single)

extern MII_BUILTIN_PIPELINE(mii::models::llama);
extern MII_BUILTIN_PIPELINE(mii::models::mistral);
extern MII_BUILTIN_PIPELINE(mii::models::qwen2);
extern MII_BUILTIN_PIPELINE(mii::models::mixtral);
extern MII_BUILTIN_PIPELINE(mii::models::phi3);
extern MII_BUILTIN_PIPELINE(mii::models::falcon);
extern MII_BUILTIN_PIPELINE(mii::models::opt);
extern MII_BUILTIN_PIPELINE(mii::models::phi);
extern MII_BUILTIN_PIPELINE(mii::models::gemma2);
extern MII_BUILTIN_PIPELINE(mii::models::gemma3);
extern MII_BUILTIN_PIPELINE(mii::models::qwen3);
extern MII_BUILTIN_PIPELINE(mii::models::qwen3_moe);
extern MII_BUILTIN_PIPELINE(mii::models::qwen2_moe);
