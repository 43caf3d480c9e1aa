// Request decoding, field by field: what each OpenAI / vLLM / DeepSpeed-MII field becomes in
// generate_params, and the 4xx (with the field named in `param` and in the message) for each
// kind of bad value.
#include <catch2/catch.hpp>

#include <string>

#include "serve/protocol.hpp"
#include "serve/request_error.hpp"

using namespace mii::serve;
using Catch::Matchers::Contains;

namespace {

// The request_error a body gets; fails the test when it is accepted.
template <class F>
request_error refusal(F&& f) {
  try {
    f();
  } catch (const request_error& e) {
    return e;
  }
  FAIL("the request was accepted");
  throw std::logic_error("unreachable");
}

request_error completion_refusal(const std::string& body) {
  return refusal([&] { decode_completion_request(body, "demo"); });
}
request_error chat_refusal(const std::string& body) {
  return refusal([&] { decode_chat_request(body, "demo"); });
}
request_error mii_refusal(const std::string& body) {
  return refusal([&] { decode_mii_request(body); });
}

}  // namespace

TEST_CASE("completions: every supported field lands in generate_params", "[serve][protocol]") {
  const auto r = decode_completion_request(R"({"model": "demo", "prompt": "Hi", "max_tokens": 7, "temperature": 0.5,
      "top_p": 0.8, "top_k": 40, "min_tokens": 2, "ignore_eos": true, "stop": ["a", "bb"], "seed": 11, "echo": true,
      "stream": true, "stream_options": {"include_usage": true}, "user": "u-1", "n": 1, "best_of": 1,
      "presence_penalty": 0, "frequency_penalty": 0.0, "logprobs": null, "logit_bias": {}, "suffix": null})",
                                           "demo");
  REQUIRE(r.prompts.size() == 1);
  CHECK(r.prompts[0].text == "Hi");
  CHECK_FALSE(r.prompts[0].is_ids);
  CHECK(r.max_tokens == 7);
  CHECK(r.params.temperature == 0.5);
  CHECK(r.params.top_p == 0.8);
  CHECK(r.params.top_k == 40);
  CHECK(r.params.min_new_tokens == 2);
  CHECK(r.params.ignore_eos);
  CHECK(r.params.stop == std::vector<std::string>{"a", "bb"});
  CHECK(r.seed == 11);
  CHECK(r.echo);
  CHECK(r.stream);
  CHECK(r.include_usage);
}

TEST_CASE("completions: defaults are OpenAI's", "[serve][protocol]") {
  const auto r = decode_completion_request(R"({"prompt": "Hi"})", "demo");  // model may be left out
  CHECK_FALSE(r.max_tokens);
  CHECK(r.params.top_p == 1.0);  // OpenAI's, not MII's 0.9
  CHECK_FALSE(r.params.temperature);
  CHECK_FALSE(r.params.top_k);
  CHECK(r.params.stop.empty());
  CHECK_FALSE(r.stream);
  CHECK_FALSE(r.echo);
  // vLLM's "top_k": -1 means all tokens.
  CHECK_FALSE(decode_completion_request(R"({"prompt": "Hi", "top_k": -1})", "demo").params.top_k);
  CHECK(decode_completion_request(R"({"prompt": "Hi", "stop": "x"})", "demo").params.stop == std::vector<std::string>{"x"});
  // Integers written as floats are integers.
  CHECK(decode_completion_request(R"({"prompt": "Hi", "max_tokens": 16.0})", "demo").max_tokens == 16);
}

TEST_CASE("completions: the four prompt shapes", "[serve][protocol]") {
  auto r = decode_completion_request(R"({"prompt": ["a", "b", "c"]})", "demo");
  REQUIRE(r.prompts.size() == 3);
  CHECK(r.prompts[2].text == "c");
  r = decode_completion_request(R"({"prompt": [1, 5, 9]})", "demo");
  REQUIRE(r.prompts.size() == 1);
  CHECK(r.prompts[0].is_ids);
  CHECK(r.prompts[0].ids == std::vector<mii::token_id>{1, 5, 9});
  r = decode_completion_request(R"({"prompt": [[1, 2], [3]]})", "demo");
  REQUIRE(r.prompts.size() == 2);
  CHECK(r.prompts[1].ids == std::vector<mii::token_id>{3});
  r = decode_completion_request(R"({"prompt": ["text", [4, 5]]})", "demo");
  CHECK_FALSE(r.prompts[0].is_ids);
  CHECK(r.prompts[1].is_ids);
}

TEST_CASE("completions: each invalid field is refused with its name and value", "[serve][protocol]") {
  struct row {
    const char* body;
    int status;
    const char* param;
    const char* says;
  };
  const row rows[] = {
      {R"({"prompt": "x", "max_tokens": "16"})", 400, "max_tokens", "must be an integer, got string \"16\""},
      {R"({"prompt": "x", "max_tokens": 0})", 400, "max_tokens", "must be an integer >= 1, got 0"},
      {R"({"prompt": "x", "max_tokens": 1.5})", 400, "max_tokens", "must be an integer"},
      {R"({"prompt": "x", "temperature": -1})", 400, "temperature", "must be a number >= 0"},
      {R"({"prompt": "x", "temperature": "hot"})", 400, "temperature", "must be a number, got string"},
      {R"({"prompt": "x", "top_p": 0})", 400, "top_p", "must be in (0, 1]"},
      {R"({"prompt": "x", "top_p": 1.5})", 400, "top_p", "must be in (0, 1]"},
      {R"({"prompt": "x", "top_k": -2})", 400, "top_k", "must be -1 or 0"},
      {R"({"prompt": "x", "min_tokens": 9, "max_tokens": 3})", 400, "min_tokens", "must not exceed 'max_tokens' (3)"},
      {R"({"prompt": "x", "stop": ""})", 400, "stop", "empty string"},
      {R"({"prompt": "x", "stop": ["a", ""]})", 400, "stop[1]", "empty string"},
      {R"({"prompt": "x", "stop": ["a", 3]})", 400, "stop[1]", "must be a string, got integer 3"},
      {R"({"prompt": "x", "stop": 5})", 400, "stop", "a string or a list of strings"},
      {R"({"prompt": "x", "stream": "yes"})", 400, "stream", "must be true or false"},
      {R"({"prompt": "x", "stream_options": {"include_usage": true}})", 400, "stream_options", "only allowed with \"stream\": true"},
      {R"({"prompt": "x", "stream": true, "stream_options": {"include_usage": 1}})", 400, "stream_options.include_usage", "true or false"},
      {R"({"prompt": "x", "stream": true, "stream_options": {"extra": 1}})", 400, "stream_options.extra", "unknown field"},
      {R"({"prompt": "x", "seed": "7"})", 400, "seed", "must be an integer"},
      {R"({"prompt": "x", "echo": 1})", 400, "echo", "true or false"},
      {R"({"prompt": "x", "user": 5})", 400, "user", "must be a string"},
      {R"({"prompt": "x", "n": 0})", 400, "n", "must be an integer in [1, 128], got 0"},
      {R"({"prompt": "x", "n": 129})", 400, "n", "must be an integer in [1, 128], got 129"},
      {R"({"prompt": "x", "n": "2"})", 400, "n", "must be an integer"},
      {R"({"prompt": "x", "best_of": 3})", 400, "best_of", "not supported"},
      {R"({"prompt": "x", "n": 2, "best_of": 3})", 400, "best_of", "use n for several choices"},
      {R"({"prompt": "x", "prompt_logprobs": 21})", 400, "prompt_logprobs", "must be an integer in [0, 20], got 21"},
      {R"({"prompt": "x", "prompt_logprobs": -1})", 400, "prompt_logprobs", "[0, 20]"},
      {R"({"prompt": "x", "logprobs": 21})", 400, "logprobs", "must be an integer in [0, 20], got 21"},
      {R"({"prompt": "x", "logprobs": true})", 400, "logprobs", "must be an integer"},
      {R"({"prompt": "x", "presence_penalty": 2.5})", 400, "presence_penalty", "must be in [-2, 2]"},
      {R"({"prompt": "x", "frequency_penalty": "high"})", 400, "frequency_penalty", "must be a number"},
      {R"({"prompt": "x", "repetition_penalty": 0})", 400, "repetition_penalty", "must be a number > 0"},
      {R"({"prompt": "x", "min_p": 1.5})", 400, "min_p", "must be in [0, 1]"},
      {R"({"prompt": "x", "logit_bias": {"50256": -101}})", 400, "logit_bias.50256", "[-100, 100]"},
      {R"({"prompt": "x", "logit_bias": {"the": 1}})", 400, "logit_bias.the", "keys of logit_bias are token ids"},
      {R"({"prompt": "x", "logit_bias": [1]})", 400, "logit_bias", "an object"},
      {R"({"prompt": "x", "suffix": "end"})", 400, "suffix", "not supported"},
      {R"({"prompt": "x", "temprature": 0})", 400, "temprature", "unknown field 'temprature'"},
      {R"({"prompt": "x", "messages": []})", 400, "messages", "unknown field"},
      {R"({"prompt": "x", "max_tokens": 5, "max_tokens": 6})", 400, "max_tokens", "appears more than once"},
      {R"({})", 400, "prompt", "'prompt' is required"},
      {R"({"prompt": null})", 400, "prompt", "'prompt' is required"},
      {R"({"prompt": []})", 400, "prompt", "empty list"},
      {R"({"prompt": 5})", 400, "prompt", "must be a string, a list of strings"},
      {R"({"prompt": [1, "a"]})", 400, "prompt[1]", "must be a token id"},
      {R"({"prompt": [1, -4]})", 400, "prompt[1]", "not a token id"},
      {R"({"prompt": [1, 1e30]})", 400, "prompt[1]", "must be a token id"},
      {R"({"prompt": ["a", 3]})", 400, "prompt[1]", "must be a string or a list of token ids"},
      {R"({"prompt": ["a", []]})", 400, "prompt[1]", "empty list of token ids"},
      {R"({"prompt": "x", "model": "gpt-4"})", 404, "model", "the model \"gpt-4\" does not exist: this server serves \"demo\""},
      {R"({"prompt": "x", "model": 4})", 400, "model", "must be a string"},
  };
  for (const auto& r : rows) {
    INFO(r.body);
    const auto e = completion_refusal(r.body);
    CHECK(e.status == r.status);
    CHECK(e.param == r.param);
    CHECK_THAT(e.what(), Contains(r.says));
  }
  CHECK(completion_refusal(R"({"prompt": "x", "model": "gpt-4"})").code == "model_not_found");
}

TEST_CASE("penalties, min_p, logit_bias and logprobs reach generate_params", "[serve][protocol]") {
  const auto c = decode_completion_request(
      R"({"prompt": "x", "presence_penalty": 0.5, "frequency_penalty": -1, "repetition_penalty": 1.2, "min_p": 0.05,
          "logit_bias": {"50256": -100, "7": 2.5}, "logprobs": 3})",
      "demo");
  CHECK(c.params.presence_penalty == 0.5);
  CHECK(c.params.frequency_penalty == -1.0);
  CHECK(c.params.repetition_penalty == 1.2);
  CHECK(c.params.min_p == 0.05);
  CHECK(c.params.logit_bias == std::vector<std::pair<mii::token_id, double>>{{50256, -100.0}, {7, 2.5}});
  CHECK(c.params.logprobs == 3);
  CHECK_FALSE(decode_completion_request(R"({"prompt": "x", "logprobs": null})", "demo").params.logprobs);
  const auto chat = decode_chat_request(
      R"({"messages": [{"role": "user", "content": "hi"}], "logprobs": true, "top_logprobs": 4})", "demo");
  CHECK(chat.params.logprobs == 4);
  CHECK(decode_chat_request(R"({"messages": [{"role": "user", "content": "hi"}], "logprobs": true})", "demo")
            .params.logprobs == 0);
  CHECK_FALSE(decode_chat_request(R"({"messages": [{"role": "user", "content": "hi"}], "logprobs": false})", "demo")
                  .params.logprobs);
  try {
    decode_chat_request(R"({"messages": [{"role": "user", "content": "hi"}], "top_logprobs": 2})", "demo");
    FAIL("expected a refusal");
  } catch (const request_error& e) {
    CHECK(e.param == "top_logprobs");
    CHECK_THAT(e.what(), Contains("needs \"logprobs\": true"));
  }
  const auto m = decode_mii_request(R"({"prompts": ["x"], "repetition_penalty": 1.3, "min_p": 0.1})");
  CHECK(m.params.repetition_penalty == 1.3);
  CHECK(m.params.min_p == 0.1);
}

TEST_CASE("request bodies that are not a JSON object", "[serve][protocol]") {
  CHECK_THAT(completion_refusal("").what(), Contains("the request body is empty"));
  CHECK_THAT(completion_refusal("{\"prompt\": ").what(), Contains("malformed JSON"));
  CHECK_THAT(completion_refusal("[1, 2]").what(), Contains("must be a JSON object, got array"));
  CHECK_THAT(completion_refusal("\"text\"").what(), Contains("must be a JSON object, got string"));
  // Invalid UTF-8 inside a JSON string: simdjson refuses the document.
  CHECK_THAT(completion_refusal("{\"prompt\": \"\xff\xfe\"}").what(), Contains("malformed JSON"));
  CHECK(completion_refusal("{\"prompt\": \"\xc3\x28\"}").status == 400);
}

TEST_CASE("chat: messages become the template's variables", "[serve][protocol]") {
  const auto r = decode_chat_request(R"({"model": "demo", "messages": [
      {"role": "system", "content": "Be brief."},
      {"role": "user", "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": "there"}], "name": "ann"},
      {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
      {"role": "tool", "content": "42", "tool_call_id": "c1"}],
      "max_completion_tokens": 9, "chat_template_kwargs": {"enable_thinking": false}, "add_generation_prompt": true,
      "temperature": 0, "logprobs": false, "top_logprobs": 0, "response_format": {"type": "text"}, "tools": [],
      "tool_choice": "none", "parallel_tool_calls": true, "store": false, "metadata": {"k": "v"}, "n": 1})",
                                     "demo");
  CHECK(r.template_variables ==
        R"({"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hello\nthere","name":"ann"},)"
        R"({"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},)"
        R"({"role":"tool","content":"42","tool_call_id":"c1"}],"add_generation_prompt":true,"enable_thinking":false})");
  CHECK(r.max_tokens == 9);
  CHECK(r.max_tokens_param == "max_completion_tokens");
  CHECK(r.params.temperature == 0.0);
  CHECK(r.params.top_p == 1.0);
  // add_generation_prompt defaults to true: the answer is the assistant's.
  CHECK_THAT(decode_chat_request(R"({"messages": [{"role": "user", "content": "x"}]})", "demo").template_variables,
             Contains("\"add_generation_prompt\":true"));
}

TEST_CASE("chat: each invalid field is refused with its name", "[serve][protocol]") {
  struct row {
    const char* body;
    const char* param;
    const char* says;
  };
  const std::string user = R"("messages": [{"role": "user", "content": "x"}])";
  const row rows[] = {
      {R"({})", "messages", "'messages' is required"},
      {R"({"messages": "hi"})", "messages", "must be a list of messages"},
      {R"({"messages": []})", "messages", "empty list"},
      {R"({"messages": [5]})", "messages[0]", "must be a JSON object, got integer"},
      {R"({"messages": [{"content": "x"}]})", "messages[0].role", "is required"},
      {R"({"messages": [{"role": "robot", "content": "x"}]})", "messages[0].role", "\"robot\"; expected one of"},
      {R"({"messages": [{"role": "user"}]})", "messages[0].content", "is required"},
      {R"({"messages": [{"role": "user", "content": 3}]})", "messages[0].content", "a string or a list of content parts"},
      {R"({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]})",
       "messages[0].content[0].type", "only \"text\" content parts"},
      {R"({"messages": [{"role": "user", "content": [{"type": "text"}]}]})", "messages[0].content[0].text", "is required"},
      {R"({"messages": [{"role": "user", "content": [{"type": "text", "text": "a", "x": 1}]}]})",
       "messages[0].content[0].x", "unknown field"},
      {R"({"messages": [{"role": "user", "content": "x", "tool_calls": []}]})", "messages[0].tool_calls", "only allowed in assistant"},
      {R"({"messages": [{"role": "user", "content": "x", "mood": "happy"}]})", "messages[0].mood", "unknown field"},
      {R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": 4, "max_completion_tokens": 5})",
       "max_completion_tokens", "give one of them"},
      {R"({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]})", "tools", "tool calling is not supported"},
      {R"({"messages": [{"role": "user", "content": "x"}], "tool_choice": "required"})", "tool_choice", "not supported"},
      {R"({"messages": [{"role": "user", "content": "x"}], "logprobs": 3})", "logprobs", "true or false"},
      {R"({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 3})", "top_logprobs", "needs \"logprobs\": true"},
      {R"({"messages": [{"role": "user", "content": "x"}], "logprobs": true, "top_logprobs": 21})", "top_logprobs", "[0, 20]"},
      {R"({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"}})", "response_format",
       "not supported"},
      {R"({"messages": [{"role": "user", "content": "x"}], "n": 0})", "n", "must be an integer in [1, 128]"},
      {R"({"messages": [{"role": "user", "content": "x"}], "stream": true, "prompt_logprobs": 1})", "prompt_logprobs",
       "leave it out with \"stream\": true"},
      {R"({"messages": [{"role": "user", "content": "x"}], "echo": true})", "echo", "unknown field"},
      {R"({"messages": [{"role": "user", "content": "x"}], "store": true})", "store", "not supported"},
      {R"({"messages": [{"role": "user", "content": "x"}], "metadata": 3})", "metadata", "must be a JSON object"},
      {R"({"messages": [{"role": "user", "content": "x"}], "chat_template_kwargs": {"messages": []}})",
       "chat_template_kwargs.messages", "set by the request itself"},
      {R"({"messages": [{"role": "user", "content": "x"}], "min_tokens": 5, "max_completion_tokens": 2})", "min_tokens",
       "must not exceed 'max_completion_tokens' (2)"},
  };
  for (const auto& r : rows) {
    INFO(r.body);
    const auto e = chat_refusal(r.body);
    CHECK(e.status == 400);
    CHECK(e.param == r.param);
    CHECK_THAT(e.what(), Contains(r.says));
  }
}

TEST_CASE("MII REST: generate kwargs under MII's names and defaults", "[serve][protocol]") {
  auto r = decode_mii_request(R"({"prompts": ["DeepSpeed is", "Seattle is"], "max_length": 128})");
  CHECK(r.prompts == std::vector<std::string>{"DeepSpeed is", "Seattle is"});
  CHECK(r.params.max_length == 128);
  CHECK(r.params.top_p == 0.9);  // MII's default
  CHECK(r.params.do_sample);
  CHECK_FALSE(r.params.max_new_tokens);
  r = decode_mii_request(R"({"prompt": "x", "max_new_tokens": 5, "min_new_tokens": 2, "ignore_eos": true,
      "return_full_text": true, "do_sample": false, "top_p": 0.5, "top_k": 3, "temperature": 0.7, "stop": "z",
      "seed": 4, "stream": true})");
  CHECK(r.prompts == std::vector<std::string>{"x"});
  CHECK(r.params.max_new_tokens == 5);
  CHECK(r.params.min_new_tokens == 2);
  CHECK(r.params.ignore_eos);
  CHECK(r.params.return_full_text);
  CHECK_FALSE(r.params.do_sample);
  CHECK(r.params.top_p == 0.5);
  CHECK(r.params.top_k == 3);
  CHECK(r.params.temperature == 0.7);
  CHECK(r.params.stop == std::vector<std::string>{"z"});
  CHECK(r.params.seed == 4u);
  CHECK(r.stream);

  CHECK(mii_refusal(R"({"max_length": 5})").param == "prompts");
  CHECK(mii_refusal(R"({"prompts": []})").param == "prompts");
  CHECK(mii_refusal(R"({"prompts": "a", "prompt": "b"})").param == "prompt");
  CHECK(mii_refusal(R"({"prompts": "a", "max_length": 0})").param == "max_length");
  CHECK(mii_refusal(R"({"prompts": "a", "max_new_tokens": 2, "min_new_tokens": 3})").param == "min_new_tokens");
  CHECK(mii_refusal(R"({"prompts": "a", "top_k": -1})").param == "top_k");
  CHECK(mii_refusal(R"({"prompts": "a", "do_sample": "no"})").param == "do_sample");
  CHECK(mii_refusal(R"({"prompts": "a", "max_tokens": 5})").param == "max_tokens");  // an OpenAI name: unknown here
}

TEST_CASE("fit_to_context: max_tokens against the prompt and the context", "[serve][protocol]") {
  mii::generate_params p;
  fit_to_context(p, 10, 16, 5, 100, "prompt", "max_tokens");
  CHECK(p.max_new_tokens == 10);
  CHECK(p.max_length == 100);  // only max_tokens limits the completion
  fit_to_context(p, std::nullopt, 16, 95, 100, "prompt", "max_tokens");
  CHECK(p.max_new_tokens == 5);  // the default is capped to what fits
  fit_to_context(p, std::nullopt, std::nullopt, 40, 100, "messages", "max_tokens");
  CHECK(p.max_new_tokens == 60);  // chat: the rest of the context

  auto e = refusal([&] { fit_to_context(p, 61, std::nullopt, 40, 100, "messages", "max_completion_tokens"); });
  CHECK(e.param == "max_completion_tokens");
  CHECK_THAT(e.what(), Contains("is 61, but the prompt is 40 tokens and this model's context is 100 tokens: at most 60"));
  e = refusal([&] { fit_to_context(p, 1, 16, 100, 100, "prompt[2]", "max_tokens"); });
  CHECK(e.param == "prompt[2]");
  CHECK_THAT(e.what(), Contains("the prompt is 100 tokens, but this model's context is 100 tokens"));
  mii::generate_params q;
  q.min_new_tokens = 8;
  e = refusal([&] { fit_to_context(q, std::nullopt, 16, 95, 100, "prompt", "max_tokens"); });
  CHECK(e.param == "min_tokens");
}

TEST_CASE("n and prompt_logprobs: OpenAI's n choices, vLLM's prompt_logprobs", "[serve][protocol][samples]") {
  const auto c = decode_completion_request(R"({"prompt": ["a", "b"], "n": 3, "prompt_logprobs": 2, "logprobs": 1, "echo": true})", "demo");
  CHECK(c.params.n == 3);
  CHECK(c.prompt_logprobs == 2);
  CHECK(c.params.logprobs == 1);
  CHECK(decode_completion_request(R"({"prompt": "a"})", "demo").params.n == 1);
  const auto chat = decode_chat_request(R"({"messages": [{"role": "user", "content": "x"}], "n": 2, "prompt_logprobs": 0})", "demo");
  CHECK(chat.params.n == 2);
  CHECK(chat.params.prompt_logprobs == 0);
  // MII's REST form has one response per prompt.
  const auto e = mii_refusal(R"({"prompts": ["a"], "n": 2})");
  CHECK(e.param == "n");
  CHECK_THAT(e.what(), Contains("/v1/completions has n"));
}
