// Many clients at once through one server: streamed, whole, and clients that leave mid-stream.
// Every greedy answer that finishes equals the answer alone (the host backend's results do not
// depend on the batch), and the KV cache is empty at the end, as /metrics reports it.
//
// MII_SERVE_TEST_CLIENTS (default 64) and MII_SERVE_TEST_REQUESTS (default 3 per client) shrink
// it for sanitizer builds.
#include <catch2/catch.hpp>

#include <atomic>
#include <random>
#include <thread>

#include "serve_support.hpp"
#include "test_files.hpp"

using namespace mii;
using namespace mii::test;
using Catch::Matchers::Contains;

namespace {

std::string str(simdjson::dom::element e) { return std::string(std::string_view(e)); }

// Prompts cut from the demo model's training text: real words, distinct lengths.
std::vector<std::string> demo_prompts(std::size_t n) {
  const std::string text = read_text(source_dir() / "tests/fixtures/demo_text.txt");
  std::vector<std::string> out;
  for (std::size_t i = 0; i < n; ++i) {
    std::string p = text.substr((i * 97) % (text.size() - 80), 8 + (i * 7) % 40);
    for (auto& c : p)
      if (c == '\n' || c == '"' || c == '\\') c = ' ';
    out.push_back(p);
  }
  return out;
}

}  // namespace

TEST_CASE("64 clients, mixed streaming / whole / leaving: finished answers equal the answers alone", "[serve][concurrency]") {
  const int clients = env_int("MII_SERVE_TEST_CLIENTS", 64);
  const int per_client = env_int("MII_SERVE_TEST_REQUESTS", 3);
  const std::int64_t tokens = 10;
  demo_server s;
  const auto prompts = demo_prompts(16);
  std::vector<std::string> alone;
  generate_params p;
  p.do_sample = false;
  p.max_new_tokens = tokens;
  for (const auto& prompt : prompts) alone.push_back(s.pipe(prompt, p).generated_text);

  const auto seed = test_seed("serve concurrency");
  std::atomic<int> finished{0}, left{0}, wrong{0}, failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < clients; ++t)
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(seed + std::uint64_t(t));
      try {
        auto c = std::make_unique<http_client>(s.port());
        for (int i = 0; i < per_client; ++i) {
          const std::size_t k = rng() % prompts.size();
          const int mode = int(rng() % 3);  // 0 whole, 1 streamed, 2 streamed and left
          const bool chat = rng() % 2 == 0;
          // Leaving clients ask for a long answer (ignore_eos) and go after a few pieces.
          const std::string tail = mode == 0 ? "}" : mode == 1 ? R"(, "stream": true})" : R"(, "ignore_eos": true, "stream": true})";
          const std::string length = std::to_string(mode == 2 ? 1000 : tokens);
          const std::string body =
              chat ? R"({"messages": [{"role": "user", "content": ")" + prompts[k] + R"("}], "temperature": 0, "max_tokens": )" +
                         length + tail
                   : R"({"prompt": ")" + prompts[k] + R"(", "temperature": 0, "max_tokens": )" + length + tail;
          const std::string target = chat ? "/v1/chat/completions" : "/v1/completions";
          if (mode == 2) {
            c->send(boost::beast::http::verb::post, target, body);
            c->receive_until([](const std::string& seen) { return seen.size() > 600; });
            c->close();
            c = std::make_unique<http_client>(s.port());
            ++left;
            continue;
          }
          const auto r = c->post(target, body);
          if (r.status != 200) {
            ++failed;
            continue;
          }
          std::string text;
          if (mode == 0) {
            const auto doc = json_of(r.body);
            const auto choice = doc.root()["choices"].at(0);
            text = chat ? str(choice["message"]["content"]) : str(choice["text"]);
          } else {
            for (const auto& e : sse_data(r.body)) {
              if (e == "[DONE]") continue;
              const auto doc = json_of(e);
              const auto choice = doc.root()["choices"].at(0);
              if (chat) {
                simdjson::dom::element content;
                if (!choice["delta"]["content"].get(content)) text += str(content);
              } else {
                text += str(choice["text"]);
              }
            }
          }
          if (text != alone[k]) {
            ++wrong;
            UNSCOPED_INFO("prompt '" << prompts[k] << "' (" << (chat ? "chat" : "completion") << ", mode " << mode
                                     << "): got '" << text << "', alone '" << alone[k] << "'");
          }
          ++finished;
        }
      } catch (const std::exception& e) {
        ++failed;
        UNSCOPED_INFO("client " << t << ": " << e.what());
      }
    });
  for (auto& t : threads) t.join();
  CHECK(failed == 0);
  CHECK(wrong == 0);
  CHECK(finished + left == clients * per_client);

  bool settled = false;
  for (int i = 0; i < 4000 && !settled; ++i) {
    settled = s.srv->svc().in_flight() == 0 && s.pipe.stats().kv_blocks_used == 0;
    if (!settled) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  http_client c(s.port());
  const auto m = c.get("/metrics");
  CHECK_THAT(m.body, Contains("mii_kv_blocks_used 0\n"));
  CHECK_THAT(m.body, Contains("mii_requests_in_flight 0\n"));
  CHECK_THAT(m.body, Contains("mii_requests_running 0\n"));
}
