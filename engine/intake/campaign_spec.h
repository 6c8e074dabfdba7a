// campaign.toml: what a campaign is (id, From, template, recipients, VERP domain, its
// own DKIM keys). Read on the caller's thread before intake; every problem, unknown keys
// and sections included, is an InputError naming file, line and key.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "engine/core/config.h"

namespace kurier::engine {

struct CampaignSpec {
  std::filesystem::path file;  // campaign.toml
  std::string id;
  std::string from;
  std::filesystem::path template_path;    // resolved against the campaign file's folder
  std::filesystem::path recipients_path;
  std::string verp_domain;
  // [dkim] (one key) or [[dkim]] (several: dual rsa-sha256 + ed25519-sha256 signatures).
  std::vector<DkimKey> dkim;
};

// Throws InputError.
CampaignSpec load_campaign(const std::filesystem::path& file);

}  // namespace kurier::engine
