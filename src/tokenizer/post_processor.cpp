#include "tokenizer/post_processor.hpp"

namespace mii::detail::tok {

namespace {

// ["<s>", 1] as RobertaProcessing / BertProcessing write their cls and sep tokens.
std::int32_t token_pair_id(const json_value& v) {
  if (!v.is_array() || v.array_size() != 2) v.fail("expected [\"token\", id], got ", v.preview());
  const std::int64_t id = v.element(1).as_int();
  if (id < 0 || id > INT32_MAX) v.fail("token id out of range: ", v.preview());
  return static_cast<std::int32_t>(id);
}

void template_processing(const json_value& spec, post_processor& out) {
  const json_value single = spec.at("single");
  const json_value specials = spec.find("special_tokens") ? spec.at("special_tokens") : spec;
  bool seen_sequence = false;
  single.for_each_element([&](const json_value& item) {
    if (auto seq = item.find("Sequence")) {
      if (seen_sequence) item.fail("a single-sequence template with two sequences");
      seen_sequence = true;
      return;
    }
    const auto special = item.find("SpecialToken");
    if (!special) item.fail("expected {\"SpecialToken\": ...} or {\"Sequence\": ...}, got ", item.preview());
    const std::string_view name = special->string_at("id");
    const auto entry = spec.find("special_tokens") ? specials.find(name) : std::nullopt;
    if (!entry) special->fail("template uses \"", name, "\" which is not in post_processor.special_tokens");
    auto& target = seen_sequence ? out.suffix : out.prefix;
    entry->at("ids").for_each_element([&](const json_value& id) {
      const std::int64_t v = id.as_int();
      if (v < 0 || v > INT32_MAX) id.fail("token id out of range: ", id.preview());
      target.push_back(static_cast<std::int32_t>(v));
    });
  });
  if (!seen_sequence) single.fail("the single-sequence template has no {\"Sequence\": ...} item");
}

}  // namespace

post_processor make_post_processor(const json_value& spec) {
  const json_value type_field = spec.at("type");
  const std::string_view type = type_field.as_string();
  post_processor out;
  if (type == "TemplateProcessing") {
    template_processing(spec, out);
  } else if (type == "ByteLevel") {
    // Only adjusts offsets, which mii does not produce.
  } else if (type == "RobertaProcessing" || type == "BertProcessing") {
    out.prefix.push_back(token_pair_id(spec.at("cls")));
    out.suffix.push_back(token_pair_id(spec.at("sep")));
  } else if (type == "Sequence") {
    spec.at("processors").for_each_element([&](const json_value& p) {
      const post_processor inner = make_post_processor(p);
      out.prefix.insert(out.prefix.begin(), inner.prefix.begin(), inner.prefix.end());
      out.suffix.insert(out.suffix.end(), inner.suffix.begin(), inner.suffix.end());
    });
  } else {
    type_field.fail("unsupported post-processor type \"", type,
                    "\" (supported: TemplateProcessing, ByteLevel, RobertaProcessing, BertProcessing, Sequence)");
  }
  return out;
}

}  // namespace mii::detail::tok
