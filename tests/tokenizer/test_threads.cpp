// One tokenizer shared by several threads (the per-thread caches and regex match data must keep
// them apart) gives every thread the ids a single thread gets.
#include <catch2/catch.hpp>

#include <thread>

#include "tokenizer_fixtures.hpp"

using namespace mii_test;

TEST_CASE("concurrent encode and decode on a shared tokenizer", "[tokenizer][threads]") {
  for (const std::string name : {"llama2", "qwen3"}) {
    const mii::tokenizer tok = real_tokenizer(name);  // copies share the loaded tables
    std::vector<std::vector<mii::token_id>> reference;
    for (const auto& item : corpus()) reference.push_back(tok.encode(item.text, true));
    std::vector<std::size_t> mismatches(3, 0);
    std::vector<std::thread> threads;
    for (std::size_t t = 0; t < mismatches.size(); ++t) {
      threads.emplace_back([&, t] {
        const mii::tokenizer mine = tok;
        // Each thread walks the corpus from a different place so that caches differ.
        const std::size_t n = corpus().size();
        for (std::size_t k = 0; k < n; ++k) {
          const std::size_t i = (k + t * n / 3) % n;
          const auto ids = mine.encode(corpus()[i].text, true);
          if (ids != reference[i] || mine.decode(ids, false) != tok.decode(reference[i], false)) ++mismatches[t];
        }
      });
    }
    for (auto& th : threads) th.join();
    INFO(name);
    CHECK(mismatches == std::vector<std::size_t>(3, 0));
  }
}
