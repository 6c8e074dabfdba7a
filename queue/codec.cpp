// Key and value encoding of the RocksDB store (layout documented in codec.h).
// Pure functions, any thread. Decoders never read past their input: malformed
// bytes make them return false, never crash.
#include "queue/codec.h"

#include <limits>

#include "common/text.h"

namespace kurier::queue::codec {
namespace {

constexpr std::uint64_t kSignFlip = std::uint64_t{1} << 63;

// Presence bits of the optional status fields: a freshly queued recipient stores
// only its state, one flag byte and next_attempt_ms (8 bytes instead of ~17).
enum StatusField : std::uint32_t {
  kHasNext = 1u << 0,
  kHasAttempts = 1u << 1,
  kHasLast = 1u << 2,
  kHasCode = 1u << 3,
  kHasEnhanced = 1u << 4,
  kHasMx = 1u << 5,
  kHasCategory = 1u << 6,
  kHasReason = 1u << 7,
  kHasLogged = 1u << 8,
  kHasBackoff = 1u << 9,
};

// The largest State value we know; a larger byte is a record from the future.
constexpr std::uint8_t kMaxState = static_cast<std::uint8_t>(State::cancelled);

void put_varint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>(static_cast<std::uint8_t>(v) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

std::uint64_t zigzag(std::int64_t v) {
  return (static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63);
}

std::int64_t unzigzag(std::uint64_t v) {
  return static_cast<std::int64_t>(v >> 1) ^ -static_cast<std::int64_t>(v & 1);
}

void put_signed(std::string& out, std::int64_t v) { put_varint(out, zigzag(v)); }

void put_string(std::string& out, std::string_view s) {
  put_varint(out, s.size());
  out.append(s);
}

// Bounds-checked reader: after the first failure every get returns false.
class Reader {
 public:
  explicit Reader(std::string_view in) : p_(in.data()), end_(in.data() + in.size()) {}

  bool varint(std::uint64_t& v) {
    v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ == end_) return false;
      auto byte = static_cast<std::uint8_t>(*p_++);
      v |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
      if (!(byte & 0x80)) return true;
    }
    return false;  // more than 10 bytes: not a varint we wrote
  }
  bool u32(std::uint32_t& v) {
    std::uint64_t wide = 0;
    if (!varint(wide) || wide > std::numeric_limits<std::uint32_t>::max()) return false;
    v = static_cast<std::uint32_t>(wide);
    return true;
  }
  bool u16(std::uint16_t& v) {
    std::uint64_t wide = 0;
    if (!varint(wide) || wide > std::numeric_limits<std::uint16_t>::max()) return false;
    v = static_cast<std::uint16_t>(wide);
    return true;
  }
  bool i64(std::int64_t& v) {
    std::uint64_t wide = 0;
    if (!varint(wide)) return false;
    v = unzigzag(wide);
    return true;
  }
  bool integer(int& v) {
    std::int64_t wide = 0;
    if (!i64(wide) || wide < std::numeric_limits<int>::min() || wide > std::numeric_limits<int>::max())
      return false;
    v = static_cast<int>(wide);
    return true;
  }
  bool byte(std::uint8_t& v) {
    if (p_ == end_) return false;
    v = static_cast<std::uint8_t>(*p_++);
    return true;
  }
  bool string(std::string& s) {
    std::uint64_t size = 0;
    if (!varint(size) || size > static_cast<std::uint64_t>(end_ - p_)) return false;
    s.assign(p_, static_cast<std::size_t>(size));
    p_ += size;
    return true;
  }
  bool strings(std::vector<std::string>& v) {
    std::uint64_t count = 0;
    // Each string takes at least one byte: a count beyond the input is corrupt
    // (and must not drive a huge resize).
    if (!varint(count) || count > static_cast<std::uint64_t>(end_ - p_)) return false;
    v.resize(static_cast<std::size_t>(count));
    for (auto& s : v)
      if (!string(s)) return false;
    return true;
  }

 private:
  const char* p_;
  const char* end_;
};

}  // namespace

// --- keys ------------------------------------------------------------------

void append_u32(std::string& out, std::uint32_t v) {
  char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
               static_cast<char>(v)};
  out.append(b, sizeof b);
}

void append_u64(std::string& out, std::uint64_t v) {
  append_u32(out, static_cast<std::uint32_t>(v >> 32));
  append_u32(out, static_cast<std::uint32_t>(v));
}

std::uint32_t load_u32(const char* p) {
  auto b = reinterpret_cast<const unsigned char*>(p);
  return (std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) | (std::uint32_t{b[2]} << 8) | b[3];
}

std::uint64_t load_u64(const char* p) { return (std::uint64_t{load_u32(p)} << 32) | load_u32(p + 4); }

std::string meta_key(std::string_view name) {
  std::string k(1, kMetaPrefix);
  k.append(name);
  return k;
}

std::string control_key(std::string_view name) {
  std::string key(1, kControlPrefix);
  key.append(name);
  return key;
}

std::string campaign_key(CampaignId id) { return campaign_prefix(kCampaignPrefix, id); }

std::string name_key(std::string_view name) {
  std::string k(1, kNamePrefix);
  k.append(name);
  return k;
}

std::string campaign_prefix(char prefix, CampaignId id) {
  std::string k(1, prefix);
  append_u32(k, id);
  return k;
}

std::string campaign_prefix_end(char prefix, CampaignId id) {
  if (id == std::numeric_limits<CampaignId>::max()) return std::string(1, static_cast<char>(prefix + 1));
  return campaign_prefix(prefix, id + 1);
}

void append_recipient_key(std::string& out, char prefix, RecipientKey key) {
  out.push_back(prefix);
  append_u32(out, key.campaign);
  append_u32(out, key.recipient);
}

std::string recipient_key(char prefix, RecipientKey key) {
  std::string k;
  k.reserve(kRecipientKeySize);
  append_recipient_key(k, prefix, key);
  return k;
}

void append_schedule_key(std::string& out, std::int64_t due_ms, RecipientKey key) {
  out.push_back(kSchedulePrefix);
  append_u64(out, static_cast<std::uint64_t>(due_ms) ^ kSignFlip);
  append_u32(out, key.campaign);
  append_u32(out, key.recipient);
}

std::string schedule_key(std::int64_t due_ms, RecipientKey key) {
  std::string k;
  k.reserve(kScheduleKeySize);
  append_schedule_key(k, due_ms, key);
  return k;
}

std::string schedule_bound(std::int64_t due_ms) {
  std::string k(1, kSchedulePrefix);
  append_u64(k, static_cast<std::uint64_t>(due_ms) ^ kSignFlip);
  return k;
}

namespace {

// <prefix, campaign, recipient, seq>: one entry of a recipient's attempt or event log.
std::string log_key(char prefix, RecipientKey key, std::uint32_t seq) {
  std::string k;
  k.reserve(kAttemptKeySize);
  append_recipient_key(k, prefix, key);
  append_u32(k, seq);
  return k;
}

// <prefix, lower-cased address>: per-address state (suppression, soft-bounce count).
std::string address_key(char prefix, std::string_view address) {
  std::string k(1, prefix);
  k.append(lower_address(address));
  return k;
}

}  // namespace

std::string attempt_key(RecipientKey key, std::uint32_t seq) { return log_key(kAttemptPrefix, key, seq); }
std::string suppression_key(std::string_view address) { return address_key(kSuppressionPrefix, address); }
std::string event_key(RecipientKey key, std::uint32_t seq) { return log_key(kEventPrefix, key, seq); }
std::string soft_bounce_key(std::string_view address) { return address_key(kSoftBouncePrefix, address); }

std::optional<ScheduleEntry> parse_schedule_key(std::string_view key) {
  if (key.size() != kScheduleKeySize || key[0] != kSchedulePrefix) return std::nullopt;
  ScheduleEntry e;
  e.due_ms = static_cast<std::int64_t>(load_u64(key.data() + 1) ^ kSignFlip);
  e.key.campaign = load_u32(key.data() + 9);
  e.key.recipient = load_u32(key.data() + 13);
  return e;
}

std::optional<RecipientKey> parse_recipient_key(std::string_view key) {
  if (key.size() != kRecipientKeySize) return std::nullopt;
  return RecipientKey{load_u32(key.data() + 1), load_u32(key.data() + 5)};
}

std::optional<CampaignId> parse_campaign_key(std::string_view key) {
  if (key.size() != 5 || key[0] != kCampaignPrefix) return std::nullopt;
  return load_u32(key.data() + 1);
}

std::string lower_address(std::string_view address) { return text::lower_ascii(address); }

// --- values ----------------------------------------------------------------

void encode_status(std::string& out, const Status& s, std::uint32_t logged_attempts) {
  std::uint32_t flags = 0;
  if (s.next_attempt_ms != 0) flags |= kHasNext;
  if (s.attempts != 0) flags |= kHasAttempts;
  if (s.last_attempt_ms != 0) flags |= kHasLast;
  if (s.code != 0) flags |= kHasCode;
  if (!s.enhanced.empty()) flags |= kHasEnhanced;
  if (!s.mx.empty()) flags |= kHasMx;
  if (!s.category.empty()) flags |= kHasCategory;
  if (!s.reason.empty()) flags |= kHasReason;
  if (logged_attempts != 0) flags |= kHasLogged;
  if (s.backoff != 0) flags |= kHasBackoff;
  out.push_back(static_cast<char>(s.state));
  put_varint(out, flags);
  if (flags & kHasNext) put_signed(out, s.next_attempt_ms);
  if (flags & kHasAttempts) put_varint(out, s.attempts);
  if (flags & kHasLast) put_signed(out, s.last_attempt_ms);
  if (flags & kHasCode) put_signed(out, s.code);
  if (flags & kHasEnhanced) put_string(out, s.enhanced);
  if (flags & kHasMx) put_string(out, s.mx);
  if (flags & kHasCategory) put_string(out, s.category);
  if (flags & kHasReason) put_string(out, s.reason);
  if (flags & kHasLogged) put_varint(out, logged_attempts);
  if (flags & kHasBackoff) put_varint(out, s.backoff);
}

bool decode_status(std::string_view in, StoredStatus& out) {
  Reader r(in);
  out = StoredStatus{};
  auto& s = out.status;
  std::uint8_t state = 0;
  std::uint32_t flags = 0;
  if (!r.byte(state) || state > kMaxState || !r.u32(flags)) return false;
  s.state = static_cast<State>(state);
  if ((flags & kHasNext) && !r.i64(s.next_attempt_ms)) return false;
  if ((flags & kHasAttempts) && !r.u16(s.attempts)) return false;
  if ((flags & kHasLast) && !r.i64(s.last_attempt_ms)) return false;
  if ((flags & kHasCode) && !r.integer(s.code)) return false;
  if ((flags & kHasEnhanced) && !r.string(s.enhanced)) return false;
  if ((flags & kHasMx) && !r.string(s.mx)) return false;
  if ((flags & kHasCategory) && !r.string(s.category)) return false;
  if ((flags & kHasReason) && !r.string(s.reason)) return false;
  if ((flags & kHasLogged) && !r.u32(out.logged_attempts)) return false;
  if ((flags & kHasBackoff) && !r.u16(s.backoff)) return false;
  return true;
}

std::optional<State> peek_state(std::string_view in) {
  if (in.empty() || static_cast<std::uint8_t>(in[0]) > kMaxState) return std::nullopt;
  return static_cast<State>(in[0]);
}

void encode_recipient_data(std::string& out, std::string_view address, const std::vector<std::string>& fields) {
  put_string(out, address);
  put_varint(out, fields.size());
  for (const auto& f : fields) put_string(out, f);
}

bool decode_recipient_data(std::string_view in, std::string& address, std::vector<std::string>& fields) {
  Reader r(in);
  return r.string(address) && r.strings(fields);
}

void encode_attempt(std::string& out, const Attempt& a) {
  put_signed(out, a.time_ms);
  put_string(out, a.mx_host);
  put_string(out, a.mx_address);
  out.push_back(a.tls ? 1 : 0);
  put_string(out, a.tls_detail);
  put_signed(out, a.code);
  put_string(out, a.enhanced);
  put_string(out, a.text);
  put_string(out, a.classification);
}

bool decode_attempt(std::string_view in, Attempt& a) {
  Reader r(in);
  std::uint8_t tls = 0;
  if (!r.i64(a.time_ms) || !r.string(a.mx_host) || !r.string(a.mx_address) || !r.byte(tls) ||
      !r.string(a.tls_detail) || !r.integer(a.code) || !r.string(a.enhanced) || !r.string(a.text) ||
      !r.string(a.classification))
    return false;
  a.tls = tls != 0;
  return true;
}

void encode_campaign(std::string& out, const Campaign& c, bool committed) {
  out.push_back(committed ? 1 : 0);
  put_varint(out, c.id);
  put_string(out, c.name);
  put_string(out, c.fingerprint);
  put_string(out, c.from);
  put_string(out, c.verp_domain);
  put_string(out, c.template_text);
  put_varint(out, c.fields.size());
  for (const auto& f : c.fields) put_string(out, f);
  put_string(out, c.settings);
  put_signed(out, c.created_ms);
  put_varint(out, c.recipient_count);
}

bool decode_campaign(std::string_view in, Campaign& c, bool& committed) {
  Reader r(in);
  std::uint8_t flag = 0;
  if (!r.byte(flag) || !r.u32(c.id) || !r.string(c.name) || !r.string(c.fingerprint) || !r.string(c.from) ||
      !r.string(c.verp_domain) || !r.string(c.template_text) || !r.strings(c.fields) || !r.string(c.settings) ||
      !r.i64(c.created_ms) || !r.u32(c.recipient_count))
    return false;
  committed = flag != 0;
  return true;
}

void encode_suppression(std::string& out, const Suppression& e) {
  put_string(out, e.reason);
  put_signed(out, e.time_ms);
}

bool decode_suppression(std::string_view address_key, std::string_view in, Suppression& e) {
  if (address_key.empty() || address_key[0] != kSuppressionPrefix) return false;
  e.address.assign(address_key.substr(1));
  Reader r(in);
  return r.string(e.reason) && r.i64(e.time_ms);
}

namespace {
// The largest EventKind we know; larger bytes come from a later version.
constexpr std::uint8_t kMaxEventKind = static_cast<std::uint8_t>(EventKind::delay);

bool read_event(Reader& r, Event& e) {
  std::uint8_t kind = 0;
  if (!r.byte(kind) || kind == 0 || kind > kMaxEventKind) return false;
  e.kind = static_cast<EventKind>(kind);
  return r.i64(e.time_ms) && r.string(e.category) && r.string(e.reason) && r.string(e.detail);
}
}  // namespace

void encode_event(std::string& out, const Event& e) {
  out.push_back(static_cast<char>(e.kind));
  put_signed(out, e.time_ms);
  put_string(out, e.category);
  put_string(out, e.reason);
  put_string(out, e.detail);
}

bool decode_event(std::string_view in, Event& out) {
  Reader r(in);
  return read_event(r, out);
}

void encode_latest_event(std::string& out, std::uint32_t logged_events, const Event& latest) {
  put_varint(out, logged_events);
  encode_event(out, latest);
}

bool decode_latest_event(std::string_view in, std::uint32_t& logged_events, Event& latest) {
  Reader r(in);
  return r.u32(logged_events) && read_event(r, latest);
}

void encode_u32_value(std::string& out, std::uint32_t v) { put_varint(out, v); }

std::optional<std::uint32_t> decode_u32_value(std::string_view in) {
  Reader r(in);
  std::uint32_t v = 0;
  if (!r.u32(v)) return std::nullopt;
  return v;
}

}  // namespace kurier::queue::codec
