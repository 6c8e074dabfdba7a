// Headless Chromium for page tests (see browser.h). Test thread.
#include "tests/integration/browser.h"

namespace kurier::test {

namespace fs = std::filesystem;

std::vector<std::string> chromium_args(const fs::path& chromium, const fs::path& profile) {
  return {chromium.string(),
          "--headless",
          "--no-sandbox",
          "--disable-gpu",
          "--disable-quic",
          "--no-first-run",
          "--disable-background-networking",
          "--disable-component-update",
          "--disable-sync",
          "--user-data-dir=" + profile.string(),
          // Lets the page's script run (fetch, render) before the DOM is taken.
          "--virtual-time-budget=5000"};
}

RunResult chromium(const fs::path& program, const fs::path& profile, const std::string& url,
                   const std::string& size, const fs::path& screenshot) {
  auto args = chromium_args(program, profile);
  args.push_back("--window-size=" + size);
  args.push_back(screenshot.empty() ? "--dump-dom" : "--screenshot=" + screenshot.string());
  args.push_back(url);
  return run(args, std::chrono::seconds(90));
}

}  // namespace kurier::test
