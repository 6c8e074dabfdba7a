// libFuzzer target: the template renderer (engine/intake/template.h). Input: field names
// (comma-separated) NUL template text NUL values (comma-separated). Compile errors
// must be InputError; a rendered message must be in wire form: every LF preceded by
// CR and no line that starts with a single '.' (dot-stuffing).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/core/input_error.h"
#include "engine/intake/template.h"

namespace {

std::vector<std::string> split(std::string_view text, char sep) {
  std::vector<std::string> out;
  while (true) {
    auto at = text.find(sep);
    out.emplace_back(text.substr(0, at));
    if (at == std::string_view::npos) return out;
    text.remove_prefix(at + 1);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  auto first = input.find('\0');
  if (first == std::string_view::npos) return 0;
  auto second = input.find('\0', first + 1);
  const std::vector<std::string> names = split(input.substr(0, first), ',');
  const std::string_view text = input.substr(first + 1, second == std::string_view::npos ? second : second - first - 1);
  std::vector<std::string> values =
      split(second == std::string_view::npos ? std::string_view{} : input.substr(second + 1), ',');
  // Intake refuses CR and LF in values (header injection): the renderer never sees them.
  for (auto& v : values)
    for (char& c : v)
      if (c == '\r' || c == '\n') c = ' ';
  values.resize(names.size());

  try {
    auto tmpl = kurier::engine::Template::compile(text, names);
    std::vector<std::string_view> views(values.begin(), values.end());
    std::string out;
    tmpl.render(views, "X-Extra: 1\r\n", out);
    for (std::size_t i = 0; i < out.size(); ++i) {
      if (out[i] == '\n' && (i == 0 || out[i - 1] != '\r')) __builtin_trap();  // bare LF
      const bool line_start = i == 0 || out[i - 1] == '\n';
      if (line_start && out[i] == '.' && (i + 1 >= out.size() || out[i + 1] != '.')) {
        // A lone "." line would end DATA early; a '.' must have been doubled.
        if (i + 1 >= out.size() || out[i + 1] == '\r') __builtin_trap();
      }
    }
    (void)tmpl.has_header("subject");
  } catch (const kurier::engine::InputError&) {
    // unknown field, no header/body separator: reported with the template's line
  }
  return 0;
}
