// Headless Chromium for the tests that look at kurier's pages (dashboard, reports):
// Debian's `chromium`, a private profile, nothing reaching beyond loopback. Test thread.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "tests/common/process.h"

namespace kurier::test {

// The command line up to the page: headless, no sandbox/GPU/updates/sync/QUIC, the
// profile in `profile`, and a virtual-time budget so the page's scripts run first.
std::vector<std::string> chromium_args(const std::filesystem::path& chromium, const std::filesystem::path& profile);

// Runs headless Chromium on `url` at `size` ("1400,900"): the DOM after the page's
// scripts ran, or (with `screenshot`) a PNG written there.
RunResult chromium(const std::filesystem::path& program, const std::filesystem::path& profile, const std::string& url,
                   const std::string& size, const std::filesystem::path& screenshot = {});

}  // namespace kurier::test
