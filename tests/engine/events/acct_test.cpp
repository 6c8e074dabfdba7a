// The accounting CSV rows: one per attempt (transient, then the final type), one per
// later event, PowerMTA's columns and time format.
#include <gtest/gtest.h>

#include "engine/events/acct.h"

namespace kurier::engine {
namespace {

queue::Attempt attempt(std::int64_t ms, int code, std::string enhanced, std::string text, std::string classification) {
  queue::Attempt a;
  a.time_ms = ms;
  a.mx_host = "mx.example.com";
  a.mx_address = "127.0.0.9";
  a.code = code;
  a.enhanced = std::move(enhanced);
  a.text = std::move(text);
  a.classification = std::move(classification);
  return a;
}

TEST(Acct, HeaderHasThePowerMtaColumns) {
  EXPECT_TRUE(acct_header().starts_with(
      "type,timeLogged,timeQueued,orig,rcpt,dsnAction,dsnStatus,dsnDiag,dsnMta,bounceCat,dlvSourceIp,"
      "dlvDestinationIp,dlvSize,jobId"));
}

TEST(Acct, OneRowPerAttemptThenPerLaterEvent) {
  queue::Recipient r;
  r.address = "a@example.com";
  r.status.state = queue::State::bounced;
  r.status.category = "hard";
  r.status.reason = "userunknown";
  std::vector<queue::Attempt> attempts = {
      attempt(1'765'000'000'000, 451, "4.7.1", "try later", "deferred soft blocked"),
      attempt(1'765'000'600'000, 550, "5.1.1", "no such user, sorry", "bounced hard userunknown")};
  queue::Event late{queue::EventKind::complaint, 1'765'100'000'000, "other", "complaint abuse", "abuse"};
  auto rows = acct_rows(r, attempts, {late}, {"spring", 1'764'999'000'000}, "b+tok@bounce.example");
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0],
            "t,2025-12-06 05:46:40+0000,2025-12-06 05:30:00+0000,b+tok@bounce.example,a@example.com,delayed,4.7.1,"
            "smtp;451 try later,mx.example.com (127.0.0.9),,,127.0.0.9,,spring,1,,");
  EXPECT_EQ(rows[1],
            "b,2025-12-06 05:56:40+0000,2025-12-06 05:30:00+0000,b+tok@bounce.example,a@example.com,failed,5.1.1,"
            "\"smtp;550 no such user, sorry\",mx.example.com (127.0.0.9),bad-mailbox,,127.0.0.9,,spring,2,,userunknown");
  EXPECT_TRUE(rows[2].starts_with("f,2025-12-07 09:33:20+0000,")) << rows[2];
  EXPECT_TRUE(rows[2].ends_with(",spring,,,complaint abuse")) << rows[2];
}

TEST(Acct, ExpiredEndsAsBounceAndDeliveredAsD) {
  queue::Recipient r;
  r.status.state = queue::State::expired;
  r.status.reason = "expired";
  auto rows = acct_rows(r, {attempt(1000, 0, "", "connection refused", "deferred soft networkerror")}, {}, {"c", 1}, "");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_TRUE(rows[0].starts_with("b,")) << rows[0];
  EXPECT_NE(rows[0].find("local;connection refused"), std::string::npos);
  EXPECT_NE(rows[0].find("message-expired"), std::string::npos);
  r.status.state = queue::State::delivered;
  rows = acct_rows(r, {attempt(1000, 250, "2.0.0", "ok", "delivered")}, {}, {"c", 1}, "");
  EXPECT_TRUE(rows[0].starts_with("d,")) << rows[0];
  EXPECT_NE(rows[0].find(",relayed,2.0.0,smtp;250 ok,"), std::string::npos) << rows[0];
}

}  // namespace
}  // namespace kurier::engine
