// mii::chat_template: where a model's template comes from (transformers' precedence), the
// special tokens it sees, which named template a render uses, and the render itself.
#include <mii/chat.hpp>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "chat/ast.hpp"
#include "chat/evaluator.hpp"
#include "chat/json_values.hpp"
#include "chat/py_text.hpp"
#include "io/json_reader.hpp"

namespace mii {

namespace jinja = detail::jinja;

namespace detail {
struct chat_template_data {
  // One unnamed template, or several named ones ("default", "tool_use", ...).
  std::vector<std::pair<std::string, std::shared_ptr<const jinja::program>>> templates;
  bool named = false;
  std::string origin;
  // Special tokens by variable name: a string, or a list of strings (additional_special_tokens).
  struct token {
    std::string name;
    std::vector<std::string> values;
    bool is_list = false;
  };
  std::vector<token> special_tokens;
};
}  // namespace detail

struct chat_template::impl : detail::chat_template_data {};

namespace {

using detail::chat_template_data;

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path.string(), ": cannot read the file");
  std::ostringstream s;
  s << in.rdbuf();
  if (in.bad()) fail(path.string(), ": cannot read the file");
  return s.str();
}

// A special token is a string or an AddedToken object {"content": "...", ...}.
std::optional<std::string> token_text(simdjson::dom::element e, const std::string& origin, const std::string& field) {
  if (e.is_null()) return std::nullopt;
  std::string_view s;
  if (!e.get_string().get(s)) return std::string(s);
  simdjson::dom::object obj;
  if (!e.get_object().get(obj)) {
    simdjson::dom::element content;
    if (!obj["content"].get(content) && !content.get_string().get(s)) return std::string(s);
  }
  fail(origin, ": field '", field, "' must be a string or an AddedToken object {\"content\": ...}, got ",
       detail::json_type_name(e), " ", detail::json_preview(e));
}

// transformers' special_tokens_map: the named special tokens that are set, the additional ones
// (a list), and the model-specific extra_special_tokens (gemma3's image_token...).
std::vector<chat_template_data::token> read_special_tokens(simdjson::dom::element root, const std::string& origin) {
  std::vector<chat_template_data::token> tokens;
  simdjson::dom::object obj;
  if (root.get_object().get(obj)) fail(origin, ": must be a JSON object, got ", detail::json_type_name(root));
  auto add = [&](const std::string& name, simdjson::dom::element e, const std::string& field) {
    if (auto t = token_text(e, origin, field)) {
      for (auto& existing : tokens)
        if (existing.name == name) {
          existing = {name, {*t}, false};
          return;
        }
      tokens.push_back({name, {*t}, false});
    }
  };
  static constexpr std::string_view named[] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                               "pad_token", "cls_token", "mask_token"};
  for (auto field : obj) {
    const std::string key(field.key);
    if (std::find(std::begin(named), std::end(named), field.key) != std::end(named)) {
      add(key, field.value, key);
    } else if (key == "additional_special_tokens") {
      simdjson::dom::array list;
      if (field.value.get_array().get(list)) continue;  // null or absent
      chat_template_data::token t{key, {}, true};
      std::size_t i = 0;
      for (simdjson::dom::element item : list) {
        if (auto text = token_text(item, origin, key + "[" + std::to_string(i) + "]")) t.values.push_back(*text);
        ++i;
      }
      if (!t.values.empty()) tokens.push_back(std::move(t));  // an empty list is "not set"
    } else if (key == "extra_special_tokens") {
      simdjson::dom::object extra;
      if (field.value.get_object().get(extra)) continue;  // some configs keep a list here: no names
      for (auto e : extra) add(std::string(e.key), e.value, key + "." + std::string(e.key));
    }
  }
  return tokens;
}

std::shared_ptr<const jinja::program> compile(std::string_view source, std::string origin) {
  return jinja::parse_template(source, std::move(origin));
}

// tokenizer_config.json's chat_template: a string, or a list of {"name", "template"}.
void read_config_templates(simdjson::dom::element field, const std::string& origin, chat_template_data& out) {
  std::string_view text;
  if (!field.get_string().get(text)) {
    out.templates.emplace_back("default", compile(text, origin + " (chat_template)"));
    out.origin = origin;
    return;
  }
  simdjson::dom::array list;
  if (field.get_array().get(list))
    fail(origin, ": field 'chat_template' must be a string or a list of {\"name\", \"template\"}, got ",
         detail::json_type_name(field), " ", detail::json_preview(field));
  std::size_t i = 0;
  for (simdjson::dom::element item : list) {
    const std::string where = "chat_template[" + std::to_string(i++) + "]";
    const auto entry = detail::json_object::expect(item, origin, where);
    const std::string name = entry.require(entry.get_string("name"), "name");
    const std::string tmpl = entry.require(entry.get_string("template"), "template");
    out.templates.emplace_back(name, compile(tmpl, origin + " (" + where + " '" + name + "')"));
  }
  if (out.templates.empty()) fail(origin, ": field 'chat_template' is an empty list");
  out.named = true;
  out.origin = origin;
}

// Templates as files (transformers >= 4.43 writes chat_template.jinja; named ones go to
// additional_chat_templates/NAME.jinja). When any exists they replace the config's field.
bool read_template_files(const std::filesystem::path& dir, chat_template_data& out) {
  std::error_code ec;
  const auto main_file = dir / "chat_template.jinja";
  std::vector<std::pair<std::string, std::filesystem::path>> files;
  if (std::filesystem::is_regular_file(main_file, ec)) files.emplace_back("default", main_file);
  const auto extra_dir = dir / "additional_chat_templates";
  if (std::filesystem::is_directory(extra_dir, ec)) {
    std::vector<std::filesystem::path> extra;
    for (const auto& entry : std::filesystem::directory_iterator(extra_dir, ec))
      if (entry.path().extension() == ".jinja" && entry.is_regular_file(ec)) extra.push_back(entry.path());
    std::sort(extra.begin(), extra.end());
    for (const auto& p : extra) files.emplace_back(p.stem().string(), p);
  }
  if (files.empty()) return false;
  for (const auto& [name, path] : files) out.templates.emplace_back(name, compile(read_file(path), path.string()));
  // One default template is a plain string in transformers; anything more is a named set.
  out.named = !(files.size() == 1 && files.front().first == "default");
  out.origin = files.front().second.string();
  return true;
}

// Fills `result`; false when there is no template and it is not `required`.
bool load(const std::filesystem::path& path, bool required, chat_template_data* result) {
  std::error_code ec;
  std::filesystem::path config_path;
  bool have_templates = false;
  if (std::filesystem::is_directory(path, ec)) {
    config_path = path / "tokenizer_config.json";
    have_templates = read_template_files(path, *result);
  } else if (path.extension() == ".jinja") {
    if (!std::filesystem::is_regular_file(path, ec)) fail(path.string(), ": file not found");
    result->templates.emplace_back("default", compile(read_file(path), path.string()));
    result->origin = path.string();
    have_templates = true;
    config_path = path.parent_path() / "tokenizer_config.json";
  } else {
    if (!std::filesystem::is_regular_file(path, ec)) fail(path.string(), ": file not found");
    config_path = path;
  }
  if (std::filesystem::is_regular_file(config_path, ec)) {
    const std::string origin = config_path.string();
    const auto doc = detail::json_document::from_string(jinja::widen_big_integers(read_file(config_path)), origin);
    result->special_tokens = read_special_tokens(doc.root(), origin);
    simdjson::dom::element field;
    if (!have_templates && !doc.root()["chat_template"].get(field) && !field.is_null()) {
      read_config_templates(field, origin, *result);
      have_templates = true;
    }
  }
  if (!have_templates) {
    if (!required) return false;
    if (std::filesystem::is_directory(path, ec))
      fail(path.string(), ": no chat template: no chat_template.jinja, and ",
           std::filesystem::exists(config_path, ec) ? "tokenizer_config.json has no chat_template field"
                                                    : "no tokenizer_config.json");
    fail(path.string(), ": no chat template: the file has no chat_template field");
  }
  return true;
}

jinja::value special_token_value(const chat_template_data::token& t) {
  if (!t.is_list) return jinja::value::string(t.values.front());
  std::vector<jinja::value> items;
  for (const auto& v : t.values) items.push_back(jinja::value::string(v));
  return jinja::value::list(std::move(items));
}

}  // namespace

chat_template chat_template::from_path(const std::filesystem::path& path) {
  auto result = std::make_shared<impl>();
  load(path, true, result.get());
  return chat_template(std::move(result));
}

std::optional<chat_template> chat_template::find(const std::filesystem::path& model_dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(model_dir, ec)) fail(model_dir.string(), ": not a directory");
  auto result = std::make_shared<impl>();
  if (!load(model_dir, false, result.get())) return std::nullopt;
  return chat_template(std::move(result));
}

chat_template chat_template::from_source(std::string source, std::string origin, std::string special_tokens_json) {
  auto result = std::make_shared<impl>();
  const auto doc = detail::json_document::from_string(jinja::widen_big_integers(special_tokens_json), origin + " special tokens");
  result->special_tokens = read_special_tokens(doc.root(), origin + " special tokens");
  result->templates.emplace_back("default", compile(source, origin));
  result->origin = std::move(origin);
  return chat_template(std::move(result));
}

const std::string& chat_template::origin() const { return impl_->origin; }

std::vector<std::string> chat_template::names() const {
  std::vector<std::string> out;
  if (impl_->named)
    for (const auto& t : impl_->templates) out.push_back(t.first);
  return out;
}

std::string chat_template::render(std::string_view variables_json) const {
  const auto doc = detail::json_document::from_string(variables_json, "chat template variables");
  if (!doc.root().is_object())
    fail("chat template variables: must be a JSON object, got ", detail::json_type_name(doc.root()), " ",
         detail::json_preview(doc.root()));
  const jinja::value given = jinja::from_json(doc.root(), "chat template variables");

  // transformers: render(messages=..., tools=..., documents=..., add_generation_prompt=...,
  // **{**special_tokens_map, **kwargs}); the caller's keys win over the special tokens.
  auto vars = std::make_shared<jinja::dict_data>();
  for (const auto& t : impl_->special_tokens) vars->set(jinja::value::string(t.name), special_token_value(t));
  for (const auto& [k, v] : given.dict().entries) vars->set(k, v);
  const jinja::value* tools = vars->find(std::string_view("tools"));
  const bool tools_given = tools && !tools->is_none();
  if (!tools) vars->set(jinja::value::string("tools"), jinja::value::none());
  if (!vars->find(std::string_view("documents"))) vars->set(jinja::value::string("documents"), jinja::value::none());
  if (!vars->find(std::string_view("add_generation_prompt")))
    vars->set(jinja::value::string("add_generation_prompt"), jinja::value::boolean(false));

  // transformers' get_chat_template: "tool_use" when tools are passed and it exists, else "default".
  const jinja::program* program = nullptr;
  if (!impl_->named) {
    program = impl_->templates.front().second.get();
  } else {
    auto named = [&](std::string_view n) -> const jinja::program* {
      for (const auto& t : impl_->templates)
        if (t.first == n) return t.second.get();
      return nullptr;
    };
    if (tools_given) program = named("tool_use");
    if (!program) program = named("default");
    if (!program) {
      std::vector<std::string> available = names();
      std::sort(available.begin(), available.end());
      std::string list;
      for (const auto& n : available) list += (list.empty() ? "'" : ", '") + n + "'";
      fail(impl_->origin, ": the model has several chat templates and none is named 'default'",
           tools_given ? " or 'tool_use'" : "", "; available: ", list);
    }
  }
  jinja::evaluator ev(*program);
  return ev.render(jinja::value::dict(std::move(vars)));
}

}  // namespace mii
