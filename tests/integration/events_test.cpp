// The event log and a webhook with a real `kurier serve` (DaemonRig): a 20,000-recipient
// campaign, every 5th recipient bounced by the sink, the daemon stopped and started
// again in the middle, and a loopback webhook receiver that first answers 503, then
// refuses connections, then takes everything. Afterwards the log holds exactly one
// delivered/bounced event per final recipient, the receiver every event of the log
// with a valid signature (duplicates only by id), and `report --format acct` one row
// per attempt.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <atomic>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/text.h"
#include "engine/events/event_log.h"
#include "engine/events/event_reader.h"
#include "tests/integration/daemon_rig.h"

namespace kurier {
namespace {

using namespace std::chrono_literals;
constexpr const char* kSecret = "hook-secret";

// A webhook receiver on 127.0.0.1: one connection at a time (the daemon's one webhook
// keeps one alive), HTTP/1.1 with Content-Length bodies only. Test thread + its own.
class HookReceiver {
 public:
  enum class Mode { ok, unavailable, refuse };
  struct Seen {
    std::map<std::uint64_t, std::string> event_by_id;  // first copy of each event
    std::uint64_t events = 0;          // events received, copies included
    std::uint64_t changed_copies = 0;  // a copy that differs from the first
    std::uint64_t bad_signatures = 0;
    std::uint64_t bad_counts = 0;      // X-Kurier-Event-Count not the array's size
    std::uint64_t answered_503 = 0;
  };

  HookReceiver() {
    listen_socket();
    thread_ = std::thread([this] { serve(); });
  }
  ~HookReceiver() {
    stop_ = true;
    thread_.join();
    if (listener_ >= 0) ::close(listener_);
  }
  std::uint16_t port() const { return port_; }
  void set_mode(Mode mode) { mode_ = mode; }
  Seen seen() {
    std::lock_guard lock(mutex_);
    return seen_;
  }

 private:
  void listen_socket() {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port_);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) throw std::runtime_error("bind");
    socklen_t len = sizeof addr;
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    ::listen(listener_, 8);
  }

  void serve() {
    while (!stop_) {
      if (mode_ == Mode::refuse) {  // connections refused: nobody listens on the port
        if (listener_ >= 0) ::close(listener_), listener_ = -1;
        std::this_thread::sleep_for(20ms);
        continue;
      }
      if (listener_ < 0) listen_socket();
      pollfd p{listener_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      while (!stop_ && mode_ != Mode::refuse && request(fd)) {}
      ::close(fd);
    }
  }

  // Reads until `buffer` holds `n` bytes; false when the peer closed or we stop.
  bool fill(int fd, std::string& buffer, std::size_t n) {
    char chunk[65536];
    while (buffer.size() < n) {
      pollfd p{fd, POLLIN, 0};
      if (stop_ || mode_ == Mode::refuse) return false;
      if (::poll(&p, 1, 50) <= 0) continue;
      ssize_t got = ::read(fd, chunk, sizeof chunk);
      if (got <= 0) return false;
      buffer.append(chunk, static_cast<std::size_t>(got));
    }
    return true;
  }

  static std::string header(const std::string& head, const std::string& name) {
    const std::string lower = text::lower_ascii(head);
    auto at = lower.find("\r\n" + text::lower_ascii(name) + ":");
    if (at == std::string::npos) return "";
    auto start = at + name.size() + 3;
    return std::string(text::trim(head.substr(start, head.find("\r\n", start) - start)));
  }

  // One request and its answer; false when the connection is over.
  bool request(int fd) {
    std::size_t end;
    while ((end = pending_.find("\r\n\r\n")) == std::string::npos)
      if (!fill(fd, pending_, pending_.size() + 1)) return pending_.clear(), false;
    const std::string head = pending_.substr(0, end);
    const std::size_t length = std::stoul("0" + header(head, "Content-Length"));
    if (!fill(fd, pending_, end + 4 + length)) return pending_.clear(), false;
    const std::string body = pending_.substr(end + 4, length);
    pending_.erase(0, end + 4 + length);
    if (mode_ == Mode::unavailable) {
      std::lock_guard lock(mutex_);
      ++seen_.answered_503;
      return answer(fd, "503 Service Unavailable");
    }
    note(body, header(head, "X-Kurier-Signature"), header(head, "X-Kurier-Event-Count"));
    return answer(fd, "200 OK");
  }

  void note(const std::string& body, const std::string& signature, const std::string& count) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha256(), kSecret, 11, reinterpret_cast<const unsigned char*>(body.data()), body.size(), mac, &len);
    const bool valid = signature == "sha256=" + text::to_hex({reinterpret_cast<const char*>(mac), len});
    auto events = nlohmann::json::parse(body);
    std::lock_guard lock(mutex_);
    if (!valid) ++seen_.bad_signatures;
    if (count != std::to_string(events.size())) ++seen_.bad_counts;
    for (const auto& e : events) {
      ++seen_.events;
      auto [it, first] = seen_.event_by_id.emplace(e.at("id").get<std::uint64_t>(), e.dump());
      if (!first && it->second != e.dump()) ++seen_.changed_copies;
    }
  }

  static bool answer(int fd, const std::string& status) {
    const std::string reply = "HTTP/1.1 " + status + "\r\nContent-Length: 0\r\n\r\n";
    return ::write(fd, reply.data(), reply.size()) == static_cast<ssize_t>(reply.size());
  }

  std::uint16_t port_ = 0;
  int listener_ = -1;
  std::atomic<Mode> mode_{Mode::unavailable};
  std::atomic<bool> stop_{false};
  std::string pending_;
  std::mutex mutex_;
  Seen seen_;
  std::thread thread_;
};

// Every line of the event log (all files), oldest first.
std::vector<nlohmann::json> log_lines(const std::filesystem::path& file) {
  std::vector<nlohmann::json> out;
  engine::LogPosition p;
  for (;;) {
    auto batch = engine::read_events(file, p, 100000);
    for (const auto& line : batch.lines) out.push_back(nlohmann::json::parse(line));
    if (batch.lines.empty()) return out;
    p = batch.end;
  }
}

TEST(EventsIntegration, LogAndWebhookHoldEveryEventAcrossARestartAndAnOutage) {
  constexpr int kPerDomain = 5000;  // x 4 domains: 20,000 recipients, every 5th bounced
  HookReceiver receiver;
  auto options = test::serve_options("127.0.41", "evt");
  // Every 5th recipient bounces by design: the hard-bounce breaker would pause the campaign.
  options.extra_config = "[breaker]\nhard_bounce_rate = 0\n[events]\nmax_bytes = 1048576\nkeep = 1000\n"
                         "[[webhook]]\nname = \"crm\"\nurl = \"http://127.0.0.1:" + std::to_string(receiver.port()) +
                         "/hook\"\nsecret = \"" + kSecret + "\"\nbatch = 500\ntimeout = \"5s\"\n";
  test::DaemonRig h(options);
  h.start_serve();
  const auto campaign = h.write_campaign_with_unknowns("evt", kPerDomain);
  ASSERT_EQ(h.submit(campaign).exit_code, 0);

  std::this_thread::sleep_for(1500ms);  // answered 503, retried with backoff
  receiver.set_mode(HookReceiver::Mode::refuse);
  h.wait_for_sink_messages(6000, 30s);
  ASSERT_EQ(h.stop_serve(SIGTERM) >> 8, 0) << h.serve_log();  // a restart in the middle
  receiver.set_mode(HookReceiver::Mode::ok);
  h.start_serve();
  ASSERT_TRUE(h.wait_until_done("evt", 4 * kPerDomain, 60s)) << h.serve_log();

  const auto file = h.queue_dir() / "events.jsonl";
  std::vector<nlohmann::json> lines;
  for (auto deadline = std::chrono::steady_clock::now() + 30s; std::chrono::steady_clock::now() < deadline;) {
    lines = log_lines(file);
    if (receiver.seen().event_by_id.size() >= lines.size()) break;
    std::this_thread::sleep_for(100ms);
  }
  // Counted since the restart: lines written, events the receiver acknowledged.
  const std::string metrics = h.get("/metrics");
  for (const char* name : {"\nkurier_events_written_total ", "\nkurier_webhook_events_sent_total "}) {
    const auto at = metrics.find(name);
    ASSERT_NE(at, std::string::npos) << name;
    EXPECT_GT(std::stoull(metrics.substr(at + std::strlen(name))), 0u) << name;
  }
  EXPECT_NE(metrics.find("\nkurier_webhook_events_lost_total 0\n"), std::string::npos);
  ASSERT_EQ(h.stop_serve(SIGTERM) >> 8, 0) << h.serve_log();

  // The log: one intake and one final event per recipient, matching the queue's word.
  std::map<std::string, std::string> final_event;
  std::map<std::string, int> finals, intakes;
  std::set<std::uint64_t> ids;
  for (const auto& e : lines) {
    ids.insert(e["id"].get<std::uint64_t>());
    const std::string type = e["type"], rcpt = e["recipient"];
    if (type == "intake") ++intakes[rcpt];
    if (type == "delivered" || type == "bounced") ++finals[rcpt], final_event[rcpt] = type;
  }
  EXPECT_EQ(ids.size(), lines.size()) << "ids unique";
  EXPECT_GT(engine::list_log_files(file).rotated.size(), 3u) << "rotated during the run";
  EXPECT_EQ(intakes.size(), 20000u);
  const test::Ledger ledger = h.ledger("evt");
  ASSERT_EQ(ledger.state.size(), 20000u);
  for (const auto& [rcpt, state] : ledger.state) {
    ASSERT_EQ(finals[rcpt], 1) << rcpt;
    ASSERT_EQ(final_event[rcpt], state) << rcpt;
  }
  EXPECT_EQ(std::count_if(final_event.begin(), final_event.end(), [](auto& kv) { return kv.second == "bounced"; }),
            4000);

  // The webhook: every event of the log, signed, duplicates only as identical copies.
  const auto seen = receiver.seen();
  EXPECT_GT(seen.answered_503, 0u);
  EXPECT_EQ(seen.bad_signatures, 0u);
  EXPECT_EQ(seen.bad_counts, 0u);
  EXPECT_EQ(seen.changed_copies, 0u);
  ASSERT_EQ(seen.event_by_id.size(), lines.size());
  for (const auto& e : lines) ASSERT_EQ(seen.event_by_id.at(e["id"]), e.dump());
  std::printf("events: %zu lines in %zu files, webhook received %llu (%llu copies), %llu answered 503\n",
              lines.size(), engine::list_log_files(file).rotated.size() + 1,
              static_cast<unsigned long long>(seen.events),
              static_cast<unsigned long long>(seen.events - seen.event_by_id.size()),
              static_cast<unsigned long long>(seen.answered_503));

  // The accounting CSV: one row per attempt, d for deliveries, b for the bounces.
  auto acct = h.kurier({"report", "evt", "--format", "acct"});
  ASSERT_EQ(acct.exit_code, 0) << acct.err;
  EXPECT_TRUE(acct.out.starts_with("type,timeLogged,timeQueued,orig,rcpt,dsnAction,dsnStatus,"));
  std::map<std::string, int> rows;
  std::istringstream csv(acct.out);
  std::string row;
  std::getline(csv, row);  // the header
  while (std::getline(csv, row)) ++rows[row.substr(0, row.find(','))];
  EXPECT_EQ(rows["d"], 16000);
  EXPECT_EQ(rows["b"], 4000);
}

}  // namespace
}  // namespace kurier
