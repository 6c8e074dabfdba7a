// The [hygiene] section of kurier.toml (README.md, "List hygiene"). Included only by
// engine/core/config.cpp and engine/intake/hygiene/hygiene.cpp, which use toml++ anyway. Start-up only;
// problems are InputError naming file, line and key.
#pragma once

#include <filesystem>
#include <string>

#include <toml++/toml.h>

#include "engine/intake/hygiene/hygiene.h"

namespace kurier::engine {

// Reads `section` (the [hygiene] table of `file`) into `options`; relative paths
// resolve against `base`. List files are read later, by Hygiene's constructor.
void read_hygiene_section(const toml::table& section, const std::string& file, const std::filesystem::path& base,
                          HygieneOptions& options);

}  // namespace kurier::engine
