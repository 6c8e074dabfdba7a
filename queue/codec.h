// Internal to queue/: the on-disk key and value formats of the RocksDB store.
// Pure functions on bytes (no RocksDB), so tests can check round trips directly.
//
// Keys (one column family; the first byte names the record type; integers are
// fixed-width big-endian so byte order is numeric order):
//   c <cid:4>                      campaign record (with its committed flag)
//   n <name>                       name index -> <cid:4>; written by commit() only
//   r <cid:4> <rid:4>              recipient's immutable data: address, field values
//   t <cid:4> <rid:4>              recipient's mutable status
//   s <due:8> <cid:4> <rid:4>      schedule entry (empty value); due is int64 with the
//                                  sign bit flipped, so negative times sort first
//   a <cid:4> <rid:4> <seq:4>      attempt log, seq counts from 0 per recipient
//   x <address>                    suppression, address lower-cased
//   e <cid:4> <rid:4> <seq:4>      event log (late bounce, complaint, ...), seq from 0
//   l <cid:4> <rid:4>              latest event and the number of logged events
//   b <address>                    soft bounces in a row, address lower-cased
//   m <name>                       store metadata ("m" "format", "m" "next_cid")
//   k <name>                       control record (Store::put_control), opaque value
// Single-byte prefixes rather than "c|": the separator would cost a byte in every
// WAL record and memtable entry for nothing, since every key part is fixed-width.
//
// Values: unsigned integers as LEB128 varints, signed ones zig-zag encoded, strings
// length-prefixed. The format version is stored once ("m" "format"), not per value;
// decoders ignore trailing bytes so a later version may append fields.
//
// Decoders return false on malformed input (truncation, a length past the end);
// callers turn that into a "corrupt record" StoreError.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "queue/store.h"

namespace kurier::queue::codec {

constexpr char kCampaignPrefix = 'c';
constexpr char kNamePrefix = 'n';
constexpr char kRecipientPrefix = 'r';
constexpr char kStatusPrefix = 't';
constexpr char kSchedulePrefix = 's';
constexpr char kAttemptPrefix = 'a';
constexpr char kSuppressionPrefix = 'x';
constexpr char kMetaPrefix = 'm';
constexpr char kEventPrefix = 'e';
constexpr char kLatestEventPrefix = 'l';
constexpr char kSoftBouncePrefix = 'b';
constexpr char kControlPrefix = 'k';

// Bumped when a value's layout changes incompatibly; open() refuses other versions.
constexpr std::uint32_t kFormatVersion = 1;

constexpr std::size_t kRecipientKeySize = 1 + 4 + 4;
constexpr std::size_t kScheduleKeySize = 1 + 8 + 4 + 4;
constexpr std::size_t kAttemptKeySize = 1 + 4 + 4 + 4;

// --- keys ------------------------------------------------------------------
// The append_* functions append to `out` (callers reuse buffers in hot loops).
void append_u32(std::string& out, std::uint32_t v);
void append_u64(std::string& out, std::uint64_t v);
std::uint32_t load_u32(const char* p);
std::uint64_t load_u64(const char* p);

std::string meta_key(std::string_view name);
std::string control_key(std::string_view name);
std::string campaign_key(CampaignId id);
std::string name_key(std::string_view name);
// "<prefix><cid:4>": the first key of a campaign's range for r, t and a records;
// campaign_prefix(prefix, id + 1) is the (exclusive) end (for id == UINT32_MAX the
// end is the next prefix byte alone).
std::string campaign_prefix(char prefix, CampaignId id);
std::string campaign_prefix_end(char prefix, CampaignId id);
void append_recipient_key(std::string& out, char prefix, RecipientKey key);  // r or t
std::string recipient_key(char prefix, RecipientKey key);
void append_schedule_key(std::string& out, std::int64_t due_ms, RecipientKey key);
std::string schedule_key(std::int64_t due_ms, RecipientKey key);
// The first schedule key with due time >= due_ms ("s" + due): an iterate bound.
std::string schedule_bound(std::int64_t due_ms);
std::string attempt_key(RecipientKey key, std::uint32_t seq);
std::string suppression_key(std::string_view address);  // lower-cases the address
std::string event_key(RecipientKey key, std::uint32_t seq);
std::string soft_bounce_key(std::string_view address);  // lower-cases the address

struct ScheduleEntry {
  std::int64_t due_ms = 0;
  RecipientKey key;
};
std::optional<ScheduleEntry> parse_schedule_key(std::string_view key);
std::optional<RecipientKey> parse_recipient_key(std::string_view key);  // r or t key
std::optional<CampaignId> parse_campaign_key(std::string_view key);

// ASCII lower-casing: domains are case-insensitive and bulk mailers treat local
// parts the same way; non-ASCII bytes (SMTPUTF8) are kept as they are.
std::string lower_address(std::string_view address);

// --- values ----------------------------------------------------------------
// The stored status carries one field the API does not show: how many attempts
// are in the log, i.e. the seq of the next attempt key.
struct StoredStatus {
  Status status;
  std::uint32_t logged_attempts = 0;
};
void encode_status(std::string& out, const Status& status, std::uint32_t logged_attempts);
bool decode_status(std::string_view in, StoredStatus& out);
// The state alone (first byte), for counts() scans; nullopt if malformed.
std::optional<State> peek_state(std::string_view in);

void encode_recipient_data(std::string& out, std::string_view address, const std::vector<std::string>& fields);
bool decode_recipient_data(std::string_view in, std::string& address, std::vector<std::string>& fields);

void encode_attempt(std::string& out, const Attempt& attempt);
bool decode_attempt(std::string_view in, Attempt& out);

void encode_campaign(std::string& out, const Campaign& campaign, bool committed);
bool decode_campaign(std::string_view in, Campaign& out, bool& committed);

void encode_suppression(std::string& out, const Suppression& entry);
bool decode_suppression(std::string_view address_key, std::string_view in, Suppression& out);

void encode_event(std::string& out, const Event& event);
bool decode_event(std::string_view in, Event& out);
// The "l" record: how many events are logged (the seq of the next), then the latest.
void encode_latest_event(std::string& out, std::uint32_t logged_events, const Event& latest);
bool decode_latest_event(std::string_view in, std::uint32_t& logged_events, Event& latest);

void encode_u32_value(std::string& out, std::uint32_t v);
std::optional<std::uint32_t> decode_u32_value(std::string_view in);

}  // namespace kurier::queue::codec
