// Reads campaign.toml into a CampaignSpec. Runs on the caller's thread before intake;
// a missing or malformed key, an unknown key or section, or a TOML syntax error is an
// InputError naming the file, line and key.
#include "engine/intake/campaign_spec.h"

#include <cctype>

#include <toml++/toml.h>

#include "common/text.h"
#include "engine/core/input_error.h"
#include "engine/core/toml_keys.h"

namespace kurier::engine {
namespace fs = std::filesystem;
namespace {

// The campaign.toml being read: its name for errors, its folder for relative paths.
struct CampaignFile {
  std::string name;
  fs::path base;

  std::string required_string(const toml::table& table, std::string_view key, const std::string& qualified) const {
    const toml::node* node = table.get(key);
    if (!node) throw InputError(name, 0, qualified, "is required");
    auto value = node->value<std::string>();
    if (!value || value->empty()) throw InputError(name, line_of(*node), qualified, "must be a non-empty string");
    return *value;
  }
};

toml::table parse_file(const std::string& name) {
  try {
    return toml::parse_file(name);
  } catch (const toml::parse_error& e) {
    throw InputError(name, e.source().begin.line, "", std::string(e.description()));
  }
}

std::string read_id(const toml::table& root, const CampaignFile& in) {
  std::string id = in.required_string(root, "id", "id");
  for (unsigned char c : id)
    if (!(std::isalnum(c) || c == '-' || c == '_' || c == '.'))
      throw InputError(in.name, line_of(*root.get("id")), "id", "may only contain letters, digits, '-', '_' and '.'");
  return id;
}

std::string read_verp_domain(const toml::table& root, const CampaignFile& in) {
  const toml::table* verp = root["verp"].as_table();
  if (!verp) throw InputError(in.name, 0, "verp.domain", "is required ([verp] domain = \"bounce.example.com\")");
  reject_unknown_keys(*verp, {"domain"}, {in.name, "verp"});
  return text::lower_ascii(in.required_string(*verp, "domain", "verp.domain"));
}

DkimKey read_dkim_key(const toml::table& table, const CampaignFile& in, bool array_item) {
  reject_unknown_keys(table, {"domain", "selector", "key"}, {in.name, "dkim", array_item});
  DkimKey d;
  d.domain = text::lower_ascii(in.required_string(table, "domain", "dkim.domain"));
  d.selector = in.required_string(table, "selector", "dkim.selector");
  d.key = in.base / in.required_string(table, "key", "dkim.key");
  return d;
}

// [dkim] (one key) or [[dkim]] (several).
std::vector<DkimKey> read_dkim(const toml::node& dkim, const CampaignFile& in) {
  std::vector<DkimKey> keys;
  if (const toml::table* one = dkim.as_table()) {
    keys.push_back(read_dkim_key(*one, in, false));
  } else if (const toml::array* several = dkim.as_array()) {
    for (const auto& item : *several) {
      const toml::table* t = item.as_table();
      if (!t) throw InputError(in.name, line_of(item), "dkim", "must be [dkim] or [[dkim]] tables");
      keys.push_back(read_dkim_key(*t, in, true));
    }
  } else {
    throw InputError(in.name, line_of(dkim), "dkim", "must be [dkim] or [[dkim]] tables");
  }
  return keys;
}

}  // namespace

CampaignSpec load_campaign(const fs::path& file) {
  const CampaignFile in{file.string(), file.has_parent_path() ? file.parent_path() : fs::path(".")};
  if (!fs::exists(file)) throw InputError(in.name, 0, "", "cannot read file");
  const toml::table root = parse_file(in.name);
  reject_unknown_keys(root, {"id", "from", "template", "recipients", "verp", "dkim"}, {in.name, ""});

  CampaignSpec spec;
  spec.file = file;
  spec.id = read_id(root, in);
  spec.from = in.required_string(root, "from", "from");
  spec.template_path = in.base / in.required_string(root, "template", "template");
  spec.recipients_path = in.base / in.required_string(root, "recipients", "recipients");
  spec.verp_domain = read_verp_domain(root, in);
  if (const toml::node* dkim = root.get("dkim")) spec.dkim = read_dkim(*dkim, in);
  return spec;
}

}  // namespace kurier::engine
