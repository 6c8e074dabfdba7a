// The [hygiene] section of kurier.toml (README.md, "List hygiene"), defined in
// hygiene_config.cpp and called by engine/core/config.cpp, which uses toml++ anyway.
// Start-up only; problems (unknown keys too) are InputError naming file, line and key.
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
