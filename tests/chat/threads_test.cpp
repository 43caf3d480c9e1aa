// render() is const and thread-safe: one parsed template rendered from several threads at once
// gives each thread the same text as a render on its own.
#include <catch2/catch.hpp>

#include <string>
#include <thread>
#include <vector>

#include <mii/chat.hpp>

TEST_CASE("one template renders concurrently from several threads", "[chat][threads]") {
  const auto t = mii::chat_template::from_source(
      "{%- set ns = namespace(n=0) -%}"
      "{%- for m in messages -%}{%- set ns.n = ns.n + m.content|length -%}"
      "<|{{ m.role }}|>{{ m.content|trim }}{{ eos_token }}\n{%- endfor -%}"
      "{{ messages|map(attribute='content')|select('string')|list|tojson }} {{ ns.n }} {{ additional_special_tokens }}",
      "threads", R"({"eos_token": "</s>", "additional_special_tokens": ["<a>"]})");
  auto variables = [](int i) {
    return R"({"messages": [{"role": "user", "content": " message )" + std::to_string(i) +
           R"( "}, {"role": "assistant", "content": "réponse 😀"}]})";
  };
  std::vector<std::string> expected;
  for (int i = 0; i < 8; ++i) expected.push_back(t.render(variables(i)));
  std::vector<int> mismatches(8, 0);
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&, i] {
      for (int round = 0; round < 200; ++round)
        if (t.render(variables(i)) != expected[i]) ++mismatches[i];
    });
  for (auto& th : threads) th.join();
  // jinja2's rendering of variables(3) (jinja_oracle.py).
  CHECK(expected[3] == "<|user|>message 3</s><|assistant|>réponse 😀</s>[\" message 3 \", \"réponse 😀\"] 20 ['<a>']");
  for (int i = 0; i < 8; ++i) CHECK(mismatches[i] == 0);
}
