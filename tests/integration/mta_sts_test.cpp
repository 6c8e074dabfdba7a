// TLS policy per domain and MTA-STS (issue 8, item 7), end to end with real parts: a
// test CA and certificates made with the openssl CLI, MTA-STS policies served over
// HTTPS by a small Python server on 127.0.0.1 (dispatching on the Host header), TXT,
// MX and A records from dnsmasq, and two kurier-sinks on one port as the MX hosts:
// 127.0.0.1 offers STARTTLS with a CA-signed certificate for mx.good.test only,
// 127.0.0.2 offers no STARTTLS. The real `kurier send` delivers one recipient per case
// and the attempt log (kurier report --format json) must say what happened and why.
#include <gtest/gtest.h>

#include <map>

#include <nlohmann/json.hpp>

#include "tests/common/dnsmasq.h"
#include "tests/common/process.h"

namespace kurier {
namespace {
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using test::ChildProcess;

// Serves <root>/<host>.txt at /.well-known/mta-sts.txt for each Host; logs each request.
constexpr const char* kPolicyServer = R"(import http.server, os, ssl, sys
root, port, cert, key = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        host = (self.headers.get('Host') or '').split(':')[0].lower()
        path = os.path.join(root, host + '.txt')
        if self.path != '/.well-known/mta-sts.txt' or not os.path.isfile(path):
            self.send_response(404)
            self.end_headers()
            return
        body = open(path, 'rb').read()
        self.send_response(200)
        self.send_header('Content-Type', 'text/plain')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, fmt, *args):
        sys.stderr.write('served host=%s %s\n' % (self.headers.get('Host'), fmt % args))
        sys.stderr.flush()
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
server = http.server.ThreadingHTTPServer(('127.0.0.1', port), Handler)
server.socket = ctx.wrap_socket(server.socket, server_side=True)
server.serve_forever()
)";

// Debian's interpreter: only the standard library is needed, and pyenv shims on PATH
// may point anywhere.
fs::path python3() {
  return fs::exists("/usr/bin/python3") ? fs::path("/usr/bin/python3") : test::find_program("python3");
}

void openssl(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {test::find_program("openssl").string()};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = test::run(argv, 30s);
  ASSERT_EQ(r.exit_code, 0) << r.err;
}

// A certificate for `names` (first = CN) signed by the test CA in `dir`.
void issue(const fs::path& dir, const std::string& stem, const std::vector<std::string>& names) {
  std::string san = "subjectAltName=";
  for (std::size_t i = 0; i < names.size(); ++i) san += (i ? ",DNS:" : "DNS:") + names[i];
  openssl({"req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
           (dir / (stem + ".key")).string(), "-out", (dir / (stem + ".csr")).string(), "-subj", "/CN=" + names[0],
           "-addext", san});
  openssl({"x509", "-req", "-in", (dir / (stem + ".csr")).string(), "-CA", (dir / "ca.pem").string(), "-CAkey",
           (dir / "ca.key").string(), "-set_serial", std::to_string(names.size() * 1000 + stem.size()), "-days", "2",
           "-copy_extensions", "copy", "-out", (dir / (stem + ".pem")).string()});
}

std::string policy(const std::string& mode, const std::vector<std::string>& mx) {
  std::string text = "version: STSv1\r\nmode: " + mode + "\r\n";
  for (const auto& m : mx) text += "mx: " + m + "\r\n";
  return text + "max_age: 86400\r\n";
}

class MtaStsIntegration : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* program : {"dnsmasq", "openssl"})
      if (test::find_program(program).empty())
        FAIL() << program << " is required (scripts/install-deps.sh: dnsmasq-base, openssl)";
    if (python3().empty()) FAIL() << "python3 is required (scripts/install-deps.sh: python3)";
  }
};

TEST_F(MtaStsIntegration, PoliciesDecideWhereAndHowMailGoesAndTheAttemptLogSaysSo) {
  test::TempDir dir;
  const fs::path root = dir.path();

  // --- A test CA; the MX certificate names mx.good.test only (mx.wrong.test, the same
  // sink, presents it too); the policy host certificate names every mta-sts host.
  openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
           (root / "ca.key").string(), "-out", (root / "ca.pem").string(), "-days", "2", "-subj",
           "/CN=kurier test CA", "-addext", "basicConstraints=critical,CA:TRUE", "-addext",
           "keyUsage=critical,keyCertSign,cRLSign"});
  ASSERT_NO_FATAL_FAILURE(issue(root, "mx", {"mx.good.test"}));
  const std::vector<std::string> sts_domains = {"enforce.test", "wrongname.test", "notlisted.test", "testing.test",
                                                "badpolicy.test"};
  std::vector<std::string> policy_hosts;
  for (const auto& d : sts_domains) policy_hosts.push_back("mta-sts." + d);
  ASSERT_NO_FATAL_FAILURE(issue(root, "https", policy_hosts));

  // --- The policies, served over HTTPS.
  fs::create_directories(root / "policies");
  test::write_file(root / "policies" / "mta-sts.enforce.test.txt", policy("enforce", {"mx.good.test"}));
  test::write_file(root / "policies" / "mta-sts.wrongname.test.txt", policy("enforce", {"*.wrong.test"}));
  test::write_file(root / "policies" / "mta-sts.notlisted.test.txt", policy("enforce", {"*.elsewhere.test"}));
  test::write_file(root / "policies" / "mta-sts.testing.test.txt", policy("testing", {"mx.good.test"}));
  test::write_file(root / "policies" / "mta-sts.badpolicy.test.txt", "<html>not a policy</html>\n");
  test::write_file(root / "policy_server.py", kPolicyServer);
  const std::uint16_t https_port = test::free_tcp_port();
  ChildProcess https({python3().string(), (root / "policy_server.py").string(),
                      (root / "policies").string(), std::to_string(https_port), (root / "https.pem").string(),
                      (root / "https.key").string()},
                     root / "https.log");
  ASSERT_TRUE(test::wait_for_tcp("127.0.0.1", https_port, 20s)) << test::read_file(root / "https.log");

  // --- The MX hosts: both sinks on one port (kurier's [smtp] port), different IPs.
  const std::uint16_t smtp_port = test::free_tcp_port();
  const std::string port = std::to_string(smtp_port);
  ChildProcess tls_sink({test::binary("kurier-sink").string(), "--listen", "127.0.0.1:" + port, "--tls-cert",
                         (root / "mx.pem").string(), "--tls-key", (root / "mx.key").string(), "--store",
                         (root / "store-tls").string()},
                        root / "sink-tls.log");
  ChildProcess plain_sink({test::binary("kurier-sink").string(), "--listen", "127.0.0.2:" + port, "--store",
                           (root / "store-plain").string()},
                          root / "sink-plain.log");
  ASSERT_TRUE(test::wait_for_tcp("127.0.0.1", smtp_port, 10s)) << test::read_file(root / "sink-tls.log");
  ASSERT_TRUE(test::wait_for_tcp("127.0.0.2", smtp_port, 10s)) << test::read_file(root / "sink-plain.log");

  // --- DNS: MX, the _mta-sts TXT records, the policy hosts' addresses.
  std::vector<std::string> zone = {"host-record=mx.good.test,127.0.0.1", "host-record=mx.wrong.test,127.0.0.1",
                                   "host-record=mx.notls.test,127.0.0.2",
                                   "mx-host=enforce.test,mx.good.test,10",
                                   "mx-host=wrongname.test,mx.wrong.test,10",
                                   "mx-host=notlisted.test,mx.good.test,10",
                                   "mx-host=testing.test,mx.wrong.test,10",
                                   "mx-host=badpolicy.test,mx.good.test,10",
                                   "mx-host=plain.test,mx.good.test,10",
                                   "mx-host=required.test,mx.notls.test,10",
                                   "mx-host=opportunistic.test,mx.notls.test,10",
                                   "local=/test/"};
  for (const auto& d : sts_domains) {
    zone.push_back("txt-record=_mta-sts." + d + ",\"v=STSv1; id=20261123T1\"");
    zone.push_back("host-record=mta-sts." + d + ",127.0.0.1");
  }
  test::Dnsmasq dns(zone);

  // --- Configuration and campaign: one recipient per case.
  const std::map<std::string, std::string> cases = {
      {"a@enforce.test", "enforce, listed MX, valid certificate"},
      {"b@wrongname.test", "enforce, certificate for another name"},
      {"c@notlisted.test", "enforce, MX not in the policy"},
      {"d@testing.test", "testing, MX not listed and wrong certificate"},
      {"e@badpolicy.test", "policy that does not parse"},
      {"f@plain.test", "no policy"},
      {"g@required.test", "per-domain required, no STARTTLS"},
      {"h@opportunistic.test", "no policy, no STARTTLS"},
  };
  std::string csv = "email\n";
  for (const auto& [address, name] : cases) csv += address + "\n";
  test::write_file(root / "recipients.csv", csv);
  test::write_file(root / "template.eml", "From: a@sender.test\nSubject: policy\n\nHello\n");
  test::write_file(root / "campaign.toml",
                   "id = \"sts\"\nfrom = \"a@sender.test\"\ntemplate = \"template.eml\"\n"
                   "recipients = \"recipients.csv\"\n[verp]\ndomain = \"b.sender.test\"\n");
  test::write_file(root / "shaping.toml", "[default]\nretry = [\"1h\"]\n[domain.\"required.test\"]\ntls = \"required\"\n");
  test::write_file(root / "kurier.toml",
                   "[queue]\npath = \"queue\"\n[dns]\nservers = [\"" + dns.server() +
                       "\"]\ntimeout_ms = 2000\n[smtp]\nhelo = \"mta.sender.test\"\nport = " + port +
                       "\n[smtp.timeouts]\nconnect_ms = 3000\ngreeting_ms = 5000\nehlo_ms = 5000\nstarttls_ms = 5000\n"
                       "[mta_sts]\nenabled = true\nport = " + std::to_string(https_port) +
                       "\nca_file = \"ca.pem\"\ntimeout_ms = 5000\n[shaping]\nfile = \"shaping.toml\"\n"
                       "[verp]\nsecret = \"s\"\n");

  auto sent = test::run({test::binary("kurier").string(), "send", (root / "campaign.toml").string(), "--config",
                         (root / "kurier.toml").string(), "--no-progress"},
                        60s);
  ASSERT_EQ(sent.exit_code, 0) << sent.out << sent.err;

  auto report = test::run({test::binary("kurier").string(), "report", "sts", "--format", "json", "--config",
                           (root / "kurier.toml").string()});
  ASSERT_EQ(report.exit_code, 0) << report.err;
  auto parsed = nlohmann::json::parse(report.out, nullptr, false);
  ASSERT_TRUE(parsed.is_object() && parsed.contains("recipients")) << report.out.substr(0, 2000);
  std::map<std::string, nlohmann::json> by_address;
  for (const auto& r : parsed["recipients"]) by_address[r.value("recipient", "")] = r;
  ASSERT_EQ(by_address.size(), cases.size()) << report.out;

  auto attempt = [&](const std::string& address) {
    const auto& r = by_address.at(address);
    EXPECT_EQ(r["attempt_log"].size(), 1u) << address << ": " << r.dump();
    return r["attempt_log"].empty() ? nlohmann::json::object() : r["attempt_log"][0];
  };
  auto contains = [](const nlohmann::json& a, const char* key, const std::string& part) {
    return a.value(key, std::string()).find(part) != std::string::npos;
  };
  auto state = [&](const std::string& address) { return by_address.at(address).value("state", ""); };

  // enforce + listed MX + certificate that verifies: delivered over verified TLS.
  {
    auto a = attempt("a@enforce.test");
    EXPECT_EQ(state("a@enforce.test"), "delivered") << a.dump();
    EXPECT_TRUE(a.value("tls", false));
    EXPECT_TRUE(a.value("tls_detail", "").starts_with("TLSv1.")) << a.dump();
    EXPECT_TRUE(contains(a, "tls_detail", "; policy=mta-sts enforce; cert=verified")) << a.dump();
  }
  // enforce + certificate for another name: deferred, never sent in plaintext.
  {
    auto a = attempt("b@wrongname.test");
    EXPECT_EQ(state("b@wrongname.test"), "deferred") << a.dump();
    EXPECT_TRUE(contains(a, "text", "starttls: certificate verify failed: hostname mismatch (tls policy: mta-sts enforce)"))
        << a.dump();
  }
  // enforce + MX not in the policy: deferred without connecting.
  {
    auto a = attempt("c@notlisted.test");
    EXPECT_EQ(state("c@notlisted.test"), "deferred") << a.dump();
    EXPECT_TRUE(contains(a, "text", "mta-sts: no MX host matches the MTA-STS policy (MX: mx.good.test; policy mx: "
                                    "*.elsewhere.test) (tls policy: mta-sts enforce)"))
        << a.dump();
  }
  // testing: delivered, with what enforce would have refused on record.
  {
    auto a = attempt("d@testing.test");
    EXPECT_EQ(state("d@testing.test"), "delivered") << a.dump();
    EXPECT_TRUE(contains(a, "tls_detail",
                         "; policy=mta-sts testing; cert=hostname mismatch; mta-sts testing failure (enforce would "
                         "defer): MX mx.wrong.test not in policy; certificate: hostname mismatch"))
        << a.dump();
  }
  // A policy that does not parse counts as none (RFC 8461 §5.1): opportunistic.
  {
    auto a = attempt("e@badpolicy.test");
    EXPECT_EQ(state("e@badpolicy.test"), "delivered") << a.dump();
    EXPECT_TRUE(contains(a, "tls_detail", "; policy=opportunistic; cert=not checked")) << a.dump();
  }
  // No policy: opportunistic TLS as before.
  {
    auto a = attempt("f@plain.test");
    EXPECT_EQ(state("f@plain.test"), "delivered") << a.dump();
    EXPECT_TRUE(a.value("tls", false)) << a.dump();
    EXPECT_TRUE(contains(a, "tls_detail", "; policy=opportunistic; cert=not checked")) << a.dump();
  }
  // Per-domain "required" against a server without STARTTLS: deferred.
  {
    auto a = attempt("g@required.test");
    EXPECT_EQ(state("g@required.test"), "deferred") << a.dump();
    EXPECT_TRUE(contains(a, "text", "starttls: STARTTLS not offered (tls policy: required)")) << a.dump();
  }
  // The same server for a domain without a rule: plaintext, as opportunistic allows.
  {
    auto a = attempt("h@opportunistic.test");
    EXPECT_EQ(state("h@opportunistic.test"), "delivered") << a.dump();
    EXPECT_FALSE(a.value("tls", true));
    EXPECT_EQ(a.value("tls_detail", ""), "plaintext; policy=opportunistic") << a.dump();
  }

  // What reached the sinks: exactly the delivered messages.
  auto count = [](const fs::path& p) {
    std::size_t n = 0;
    if (fs::exists(p))
      for (const auto& e : fs::recursive_directory_iterator(p)) n += e.path().extension() == ".eml";
    return n;
  };
  EXPECT_EQ(count(root / "store-tls"), 4u) << "enforce, testing, badpolicy, plain";
  EXPECT_EQ(count(root / "store-plain"), 1u) << "opportunistic only; required.test never sent";

  // Each policy was fetched over HTTPS (the bad one too) by the Host it belongs to.
  const std::string served = test::read_file(root / "https.log");
  for (const auto& host : policy_hosts)
    EXPECT_NE(served.find("served host=" + host), std::string::npos) << host << "\n" << served;
  std::printf("[ figures  ] mta-sts: %zu cases: 4 delivered over TLS, 1 in plaintext, 3 deferred by policy\n",
              cases.size());
}

}  // namespace
}  // namespace kurier
