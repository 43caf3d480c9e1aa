// Reads tokenizer.json into a tokenizer_impl, checking every field it uses.
#include <algorithm>
#include <unordered_map>

#include "tokenizer/json_reader.hpp"
#include "tokenizer/tokenizer_impl.hpp"
#include "tokenizer/unicode.hpp"

namespace mii::detail {

namespace {

using tok::json_value;

void load_added_tokens(tokenizer_impl& t, const json_value& list) {
  // Ids are assigned as the reference does: the model's id when the content is in its vocabulary,
  // else the next id after the model's (the "id" field only confirms it).
  std::int32_t next_id = t.model->id_limit();
  std::unordered_map<std::string, std::size_t> by_content;
  list.for_each_element([&](const json_value& item) {
    tok::added_token a;
    a.content = std::string(item.string_at("content"));
    if (tok::find_invalid_utf8(a.content) != std::string_view::npos) item.at("content").fail("invalid UTF-8");
    a.special = item.bool_or("special", false);
    a.single_word = item.bool_or("single_word", false);
    a.lstrip = item.bool_or("lstrip", false);
    a.rstrip = item.bool_or("rstrip", false);
    a.normalized = item.bool_or("normalized", !a.special);
    if (auto id = item.find("id")) {
      const std::int64_t v = id->as_int();
      if (v < 0 || v > INT32_MAX) id->fail("token id out of range: ", id->preview());
    }
    if (a.content.empty()) return;  // ignored by the reference
    if (auto it = by_content.find(a.content); it != by_content.end()) {
      a.id = t.added[it->second].id;
      t.added[it->second] = a;  // the later definition replaces the earlier one
      return;
    }
    if (auto id = t.model->token_to_id(a.content)) a.id = *id;
    else a.id = next_id++;
    by_content.emplace(a.content, t.added.size());
    t.added.push_back(std::move(a));
  });
}

void build_added_matchers(tokenizer_impl& t) {
  std::vector<std::string> raw_patterns, norm_patterns;
  std::vector<std::uint32_t> raw_index, norm_index;
  t.added_decode_text.clear();
  for (std::size_t i = 0; i < t.added.size(); ++i) {
    const tok::added_token& a = t.added[i];
    std::string text = a.content;
    if (a.normalized && t.normalizer) {
      std::string normalized;
      if (t.normalizer->apply(a.content, normalized)) text = normalized;
    }
    t.added_decode_text.push_back(text);
    if (a.normalized) {
      norm_patterns.push_back(text);
      norm_index.push_back(static_cast<std::uint32_t>(i));
    } else {
      raw_patterns.push_back(text);
      raw_index.push_back(static_cast<std::uint32_t>(i));
    }
  }
  t.raw_added.build(raw_patterns, raw_index);
  t.normalized_added.build(norm_patterns, norm_index);
}

// "<s>" or {"content": "<s>", ...} as tokenizer_config.json writes bos_token / eos_token.
std::optional<std::string> config_token(const json_value& config, std::string_view key) {
  if (!config.is_object()) return std::nullopt;
  auto v = config.find(key);
  if (!v) return std::nullopt;
  if (v->is_string()) return std::string(v->as_string());
  if (v->is_object())
    if (auto c = v->optional_string("content")) return std::string(*c);
  return std::nullopt;
}

}  // namespace

std::shared_ptr<const tokenizer_impl> load_tokenizer(std::string_view json, std::string origin,
                                                     std::string_view config_json) {
  auto t = std::make_shared<tokenizer_impl>();
  t->origin = std::move(origin);
  simdjson::dom::parser parser;
  const simdjson::padded_string padded(json);
  simdjson::dom::element root_element;
  if (const auto err = parser.parse(padded).get(root_element); err != simdjson::SUCCESS)
    mii::fail(t->origin, ": not valid JSON: ", simdjson::error_message(err));
  const json_value root(root_element, t->origin);
  if (!root.is_object()) mii::fail(t->origin, ": expected a JSON object at the top level, got ", root.kind());
  if (auto v = root.find("version"); v && v->as_string() != "1.0")
    v->fail("unknown tokenizer.json version ", v->preview(), " (expected \"1.0\")");

  // model
  const auto model = root.find("model");
  if (!model) mii::fail(t->origin, ": missing required field 'model'");
  if (!model->is_object()) model->fail_type("an object");
  std::string_view model_type = "BPE";
  if (auto type = model->find("type")) {
    model_type = type->as_string();
    if (model_type != "BPE")
      type->fail("unsupported model type \"", model_type, "\" (mii supports BPE: byte-level as in Llama-3 / Qwen2, "
                 "and SentencePiece-style with byte fallback as in Llama-2 / Mistral)");
  } else if (!model->find("merges")) {
    model->fail("missing required field 'type' (and no 'merges' to recognise a BPE model by)");
  }
  t->model = std::make_unique<tok::bpe_model>(*model);

  if (auto n = root.find("normalizer")) t->normalizer = tok::make_normalizer(*n);
  if (auto p = root.find("pre_tokenizer")) t->pre_tokenizer = tok::make_pre_tokenizer(*p);
  if (t->pre_tokenizer) {
    tok::pre_tokenizer* last = tok::last_step(t->pre_tokenizer.get());
    if (last && last->is_byte_level() && t->model->enable_raw_bytes()) last->set_skip_byte_mapping(true);
  }
  if (!t->pre_tokenizer) t->model->enable_marker_splitting();
  if (auto a = root.find("added_tokens")) load_added_tokens(*t, *a);
  build_added_matchers(*t);

  // id tables
  t->id_limit = t->model->id_limit();
  for (const auto& a : t->added) t->id_limit = std::max(t->id_limit, a.id + 1);
  t->added_by_id.assign(static_cast<std::size_t>(t->id_limit), -1);
  t->special_by_id.assign(static_cast<std::size_t>(t->id_limit), 0);
  for (std::size_t i = 0; i < t->added.size(); ++i) t->added_by_id[static_cast<std::size_t>(t->added[i].id)] = static_cast<std::int32_t>(i);
  // decode(skip_special_tokens) drops a token whose text is the content of a special token.
  for (const auto& a : t->added) {
    if (!a.special) continue;
    t->special_by_id[static_cast<std::size_t>(a.id)] = 1;
    if (auto id = t->model->token_to_id(a.content); id && t->added_by_id[static_cast<std::size_t>(*id)] < 0)
      t->special_by_id[static_cast<std::size_t>(*id)] = 1;
  }

  const auto lookup = [impl = t.get()](std::string_view s) -> std::optional<std::int32_t> {
    for (const auto& a : impl->added)
      if (a.content == s) return a.id;
    return impl->model->token_to_id(s);
  };
  if (auto p = root.find("post_processor")) {
    t->post = tok::make_post_processor(*p);
    for (const auto* list : {&t->post->prefix, &t->post->suffix})
      for (const token_id id : *list)
        if (id < 0 || id >= t->id_limit)
          p->fail("adds token id ", id, ", outside the vocabulary (ids 0..", t->id_limit - 1, ")");
  }
  if (auto d = root.find("decoder")) t->decoder = tok::decoder_chain(*d);

  // bos / eos: the post-processor's template first, then tokenizer_config.json, then the usual
  // names of special tokens.
  if (t->post && !t->post->prefix.empty()) t->bos = t->post->prefix.front();
  if (t->post && !t->post->suffix.empty()) t->eos = t->post->suffix.back();
  std::optional<simdjson::padded_string> config_padded;
  simdjson::dom::parser config_parser;
  if (!config_json.empty()) {
    config_padded.emplace(config_json);
    simdjson::dom::element cfg;
    if (config_parser.parse(*config_padded).get(cfg) == simdjson::SUCCESS) {
      const std::string config_origin = "tokenizer_config.json";
      const json_value config(cfg, config_origin);
      if (!t->bos)
        if (auto name = config_token(config, "bos_token")) t->bos = lookup(*name);
      if (!t->eos)
        if (auto name = config_token(config, "eos_token")) t->eos = lookup(*name);
    }
  }
  const auto special_named = [&](std::initializer_list<std::string_view> names) -> std::optional<token_id> {
    for (std::string_view name : names)
      for (const auto& a : t->added)
        if (a.special && a.content == name) return a.id;
    return std::nullopt;
  };
  if (!t->bos) t->bos = special_named({"<s>", "<|begin_of_text|>", "<bos>", "<|startoftext|>"});
  if (!t->eos) t->eos = special_named({"</s>", "<|end_of_text|>", "<|endoftext|>", "<eos>", "<|im_end|>"});
  return t;
}

}  // namespace mii::detail
