// DNS response parsing for the MX resolver: plain records out of untrusted bytes.
// Pure functions, any thread.
// Malformed input yields false plus a reason, never a throw or an out-of-bounds read.
#include "dns/message.h"

#include <ares.h>
#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <memory>

#include "common/text.h"

namespace kurier::dns::wire {
namespace {

constexpr std::size_t kHeaderSize = 12;
constexpr std::size_t kMaxMessageSize = 65535;  // a DNS message length is a 16-bit field
constexpr std::uint32_t kTtlTopBit = 0x80000000u;

struct Reader {
  const unsigned char* data;
  std::size_t size;
  std::size_t pos = 0;

  bool has(std::size_t n) const { return n <= size && pos <= size - n; }
  std::uint16_t u16() {
    auto v = static_cast<std::uint16_t>((data[pos] << 8) | data[pos + 1]);
    pos += 2;
    return v;
  }
  std::uint32_t u32() {
    std::uint32_t v = (std::uint32_t{data[pos]} << 24) | (std::uint32_t{data[pos + 1]} << 16) |
                      (std::uint32_t{data[pos + 2]} << 8) | std::uint32_t{data[pos + 3]};
    pos += 4;
    return v;
  }
};

// Decodes the (possibly compressed) name at `at`; `encoded_len` is its length in place.
// ares_expand_name checks compression pointers against the buffer and against loops.
bool expand_name(const unsigned char* message, std::size_t size, std::size_t at, std::string& name,
                 std::size_t& encoded_len) {
  if (at >= size) return false;
  char* raw = nullptr;
  long len = 0;
  if (ares_expand_name(message + at, message, static_cast<int>(size), &raw, &len) != ARES_SUCCESS) return false;
  std::unique_ptr<char, decltype(&ares_free_string)> owned(raw, &ares_free_string);
  if (len <= 0 || static_cast<std::size_t>(len) > size - at) return false;
  name = normalize_name(raw);
  encoded_len = static_cast<std::size_t>(len);
  return true;
}

bool parse_record(Reader& r, Record& rec, bool& keep, std::string& error) {
  std::size_t name_len = 0;
  if (!expand_name(r.data, r.size, r.pos, rec.name, name_len)) {
    error = "bad owner name";
    return false;
  }
  r.pos += name_len;
  if (!r.has(10)) {
    error = "record header past the end";
    return false;
  }
  rec.type = r.u16();
  std::uint16_t klass = r.u16();
  rec.ttl = r.u32();
  if (rec.ttl & kTtlTopBit) rec.ttl = 0;
  std::uint16_t rdlength = r.u16();
  if (!r.has(rdlength)) {
    error = "RDATA past the end";
    return false;
  }
  const std::size_t rdata = r.pos;
  const std::size_t rdata_end = rdata + rdlength;
  r.pos = rdata_end;
  keep = klass == kClassIn;
  if (!keep) return true;

  std::size_t used = 0;
  switch (rec.type) {
    case kTypeA:
    case kTypeAaaa: {
      const int family = rec.type == kTypeA ? AF_INET : AF_INET6;
      const std::size_t want = rec.type == kTypeA ? 4 : 16;
      if (rdlength != want) {
        error = rec.type == kTypeA ? "A record of wrong length" : "AAAA record of wrong length";
        return false;
      }
      std::array<char, INET6_ADDRSTRLEN> text{};
      if (!inet_ntop(family, r.data + rdata, text.data(), static_cast<socklen_t>(text.size()))) {
        error = "unprintable address";
        return false;
      }
      rec.address = text.data();
      return true;
    }
    case kTypeCname:
      if (!expand_name(r.data, r.size, rdata, rec.target, used) || used != rdlength) {
        error = "bad CNAME target";
        return false;
      }
      return true;
    case kTypeMx: {
      if (rdlength < 3) {
        error = "MX record too short";
        return false;
      }
      Reader pref{r.data, r.size, rdata};
      rec.preference = pref.u16();
      if (!expand_name(r.data, r.size, rdata + 2, rec.target, used) || used + 2 != rdlength) {
        error = "bad MX exchange";
        return false;
      }
      return true;
    }
    case kTypeSoa: {
      std::string ignored;
      std::size_t pos = rdata;
      for (int i = 0; i < 2; ++i) {  // MNAME, RNAME
        if (!expand_name(r.data, r.size, pos, ignored, used)) {
          error = "bad SOA name";
          return false;
        }
        pos += used;
      }
      if (pos + 20 != rdata_end) {
        error = "SOA record of wrong length";
        return false;
      }
      Reader fields{r.data, r.size, pos + 16};  // skip SERIAL, REFRESH, RETRY, EXPIRE
      rec.soa_minimum = fields.u32();
      if (rec.soa_minimum & kTtlTopBit) rec.soa_minimum = 0;
      return true;
    }
    default:
      return true;
  }
}

bool parse_section(Reader& r, std::uint16_t count, std::vector<Record>& out, const char* section, std::string& error) {
  for (std::uint16_t i = 0; i < count; ++i) {
    Record rec;
    bool keep = false;
    if (!parse_record(r, rec, keep, error)) {
      error = std::string(section) + " section: " + error;
      return false;
    }
    if (keep) out.push_back(std::move(rec));
  }
  return true;
}

}  // namespace

std::string normalize_name(std::string name) {
  while (!name.empty() && name.back() == '.') name.pop_back();
  std::transform(name.begin(), name.end(), name.begin(), text::lower_char);
  return name;
}

bool parse_message(const unsigned char* data, std::size_t size, Message& out, std::string& error) {
  out = Message{};
  if (data == nullptr || size < kHeaderSize) {
    error = "shorter than a DNS header";
    return false;
  }
  if (size > kMaxMessageSize) {
    error = "longer than a DNS message can be";
    return false;
  }
  Reader r{data, size};
  out.id = r.u16();
  const std::uint16_t flags = r.u16();
  out.truncated = (flags & 0x0200) != 0;
  out.rcode = flags & 0x000f;
  const std::uint16_t qdcount = r.u16();
  const std::uint16_t ancount = r.u16();
  const std::uint16_t nscount = r.u16();
  const std::uint16_t arcount = r.u16();
  for (std::uint16_t i = 0; i < qdcount; ++i) {
    std::string name;
    std::size_t len = 0;
    if (!expand_name(data, size, r.pos, name, len) || !r.has(len + 4)) {
      error = "bad question";
      return false;
    }
    if (i == 0) out.question = std::move(name);
    r.pos += len + 4;
  }
  if (!parse_section(r, ancount, out.answers, "answer", error)) return false;
  if (!parse_section(r, nscount, out.authority, "authority", error)) return false;
  if (!parse_section(r, arcount, out.additional, "additional", error)) return false;
  return true;
}

bool follow_cnames(const std::vector<Record>& answers, const std::string& name, std::string& canonical,
                   std::vector<std::string>& chain, std::uint32_t& min_ttl, std::string& error) {
  canonical = name;
  chain.push_back(name);
  for (int steps = 0;; ++steps) {
    auto it = std::find_if(answers.begin(), answers.end(),
                           [&](const Record& rec) { return rec.type == kTypeCname && rec.name == canonical; });
    if (it == answers.end()) return true;
    if (steps >= kMaxCnameChain) {
      error = "CNAME chain longer than " + std::to_string(kMaxCnameChain) + " at " + name;
      return false;
    }
    if (std::find(chain.begin(), chain.end(), it->target) != chain.end()) {
      error = "CNAME loop at " + it->target;
      return false;
    }
    min_ttl = std::min(min_ttl, it->ttl);
    canonical = it->target;
    chain.push_back(canonical);
  }
}

bool negative_ttl(const Message& message, std::uint32_t& ttl) {
  for (const auto& rec : message.authority) {
    if (rec.type != kTypeSoa) continue;
    ttl = std::min(rec.ttl, rec.soa_minimum);
    return true;
  }
  return false;
}

}  // namespace kurier::dns::wire
