#include <mii/runtime/request.hpp>

#include <mii/error.hpp>

namespace mii::runtime {

std::unique_ptr<request> make_sample(request& r, std::int32_t i) {
  if (r.generated() != 0 || r.sample_index != 0 || i < 1 || i >= r.n)
    fail("internal: sample ", i, " of a request with n = ", r.n, " that generated ", r.generated(), " tokens");
  auto s = std::make_unique<request>();
  s->id = r.id;
  s->index = r.index;
  s->prompt_text = r.prompt_text;
  s->tokens = r.tokens;
  s->prompt_len = r.prompt_len;
  s->max_new = r.max_new;
  s->min_new = r.min_new;
  s->ignore_eos = r.ignore_eos;
  s->return_full_text = r.return_full_text;
  s->sampling = r.sampling;
  s->sampling.seed = sample_seed(r.sampling.seed, i);
  s->repetition_penalty = r.repetition_penalty;
  s->presence_penalty = r.presence_penalty;
  s->frequency_penalty = r.frequency_penalty;
  s->logit_bias = r.logit_bias;
  s->prompt_vocabulary = r.prompt_vocabulary;
  s->logprobs = r.logprobs;
  s->stop_strings = r.stop_strings;
  s->channel = r.channel;
  s->n = r.n;
  s->sample_index = i;
  s->first = &r;
  s->token_ids = &s->tokens;
  return s;
}

}  // namespace mii::runtime
