// The dashboard page of `kurier serve` in headless Chromium (Debian package): after a
// campaign, the DOM the page builds from /api/status must show every domain with its
// delivered and bounced counts; a screenshot is kept as a test artifact under
// ${KURIER_BINARY_DIR}/artifacts/dashboard.png (issue 3, "Done when").
#include <gtest/gtest.h>

#include <iostream>
#include <regex>

#include <nlohmann/json.hpp>

#include "tests/integration/daemon_rig.h"

namespace kurier {
namespace {
namespace fs = std::filesystem;

// Everything Chromium would otherwise reach for (updates, sync, QUIC, GPU), off.
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

// The text of the cell with class `cls` in the table row of `domain`; "" if absent.
std::string cell(const std::string& dom, const std::string& domain, const std::string& cls) {
  std::smatch row;
  const std::regex row_re("<tr data-domain=\"" + std::regex_replace(domain, std::regex("\\."), "\\.") +
                          "\">(.*?)</tr>");
  if (!std::regex_search(dom, row, row_re)) return "";
  std::smatch c;
  const std::string row_html = row[1];
  if (!std::regex_search(row_html, c, std::regex("<td class=\"" + cls + "\">([^<]*)</td>"))) return "";
  return c[1];
}

TEST(DashboardIntegration, HeadlessChromiumRendersTheDomainTable) {
  const fs::path chromium = test::find_program("chromium");
  ASSERT_FALSE(chromium.empty()) << "the Debian package 'chromium' is required (scripts/install-deps.sh)";
  test::DaemonRig h(test::serve_options("127.0.7", "dsh"));
  h.start_serve();
  constexpr int kPerDomain = 20;
  auto submitted = h.submit(h.write_campaign_with_unknowns("rendered", kPerDomain));
  ASSERT_EQ(submitted.exit_code, 0) << submitted.out << submitted.err << h.serve_log();
  h.await_done("rendered", 4 * kPerDomain);

  const std::string url = "http://" + h.http_address() + "/";
  auto args = chromium_args(chromium, h.root() / "chromium-dom");
  args.push_back("--dump-dom");
  args.push_back(url);
  auto dump = test::run(args, std::chrono::seconds(90));
  ASSERT_EQ(dump.exit_code, 0) << dump.err;
  const std::string& dom = dump.out;
  ASSERT_NE(dom.find("<table id=\"domains\">"), std::string::npos) << dom;
  EXPECT_NE(dom.find("<div id=\"error\"></div>"), std::string::npos) << "the page reported an error: " << dom;
  for (const auto& [domain, e] : h.expected_with_unknowns(kPerDomain)) {
    EXPECT_EQ(cell(dom, domain, "name"), domain) << dom;
    EXPECT_EQ(cell(dom, domain, "delivered"), std::to_string(e.delivered)) << domain;
    EXPECT_EQ(cell(dom, domain, "bounced"), std::to_string(e.bounced_hard)) << domain;
    EXPECT_EQ(cell(dom, domain, "queued"), "0") << domain;
  }
  EXPECT_NE(dom.find("class=\"badge normal\""), std::string::npos);
  // The campaign table too.
  EXPECT_NE(dom.find("<tr data-campaign=\"rendered\">"), std::string::npos) << dom;

  // The screenshot, kept for humans to look at.
  const fs::path artifacts = fs::path(KURIER_BINARY_DIR) / "artifacts";
  fs::create_directories(artifacts);
  const fs::path png = artifacts / "dashboard.png";
  fs::remove(png);
  auto shot_args = chromium_args(chromium, h.root() / "chromium-shot");
  shot_args.push_back("--screenshot=" + png.string());
  shot_args.push_back("--window-size=1280,800");
  shot_args.push_back(url);
  auto shot = test::run(shot_args, std::chrono::seconds(90));
  ASSERT_EQ(shot.exit_code, 0) << shot.err;
  ASSERT_TRUE(fs::exists(png)) << shot.err;
  const std::string bytes = test::read_file(png);
  ASSERT_GT(bytes.size(), 8u);
  EXPECT_EQ(bytes.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_GT(bytes.size(), 10000u) << "a rendered 1280x800 page is more than a blank image";
  std::cout << "dashboard screenshot: " << png.string() << "\n";
}

}  // namespace
}  // namespace kurier
