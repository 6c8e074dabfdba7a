// The durable queue: campaigns, recipients and their states, the retry schedule,
// the attempt log and the suppression list, in one RocksDB database.
//
// Contract:
//   - A campaign becomes visible (to due(), campaigns(), ...) only after
//     CampaignWriter::commit() returns; commit() is synced (WAL fsync). A campaign
//     that was never committed (crash, abort) is removed when the store next opens.
//   - record() writes a batch of delivery outcomes as one synced WriteBatch; callers
//     batch many outcomes per call (group commit), never one fsync per message.
//   - Every recipient is either final (delivered, bounced, expired, suppressed) or
//     has exactly one schedule entry (queued, deferred): none is ever lost.
//
// Keys are fixed-width big-endian so they sort numerically (layout in queue/codec.h).
//
// Threading: a Store is thread-safe; all methods may be called concurrently.
// Calls block on disk I/O: the engine calls them from its own threads, never
// from a network event loop. Disk failures (full, read-only, corrupt) are thrown
// as StoreError: the engine stops taking work and reports it; what was committed
// stays committed.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace kurier::queue {

class StoreError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class State : std::uint8_t {
  queued = 0,      // never tried yet
  delivered = 1,   // 2xx from the MX
  deferred = 2,    // 4xx or temporary failure; retried at next_attempt_ms
  bounced = 3,     // 5xx or permanent DNS failure
  expired = 4,     // still failing temporarily after max age
  suppressed = 5,  // never sent: hygiene verdict or suppression list
};
const char* to_string(State state);
std::optional<State> state_from_string(std::string_view name);
inline bool is_final(State s) { return s != State::queued && s != State::deferred; }

using CampaignId = std::uint32_t;   // assigned by the store, from 1
using RecipientId = std::uint32_t;  // assigned by the caller: the recipient's row, from 1

struct RecipientKey {
  CampaignId campaign = 0;
  RecipientId recipient = 0;
  auto operator<=>(const RecipientKey&) const = default;
};

struct Campaign {
  CampaignId id = 0;                // assigned by begin_campaign
  std::string name;                 // campaign.toml `id`; unique in the store
  std::string fingerprint;          // digest of the inputs: recognises a resubmission
  std::string from;                 // From header value
  std::string verp_domain;
  std::string template_text;        // stored once per campaign
  std::vector<std::string> fields;  // names of Recipient::fields, in order
  std::string settings;             // opaque to the store (the engine keeps JSON here)
  std::int64_t created_ms = 0;
  std::uint32_t recipient_count = 0;  // set by commit()
};

// The latest state of a recipient and the summary of its last attempt.
struct Status {
  State state = State::queued;
  std::uint16_t attempts = 0;
  std::int64_t next_attempt_ms = 0;  // queued/deferred: when due (schedule key)
  std::int64_t last_attempt_ms = 0;
  int code = 0;                      // last reply code (0: none)
  std::string enhanced;              // last enhanced status code
  std::string mx;                    // last MX host tried
  std::string category;              // hard, soft, block, other ("" while pending)
  std::string reason;                // Sisimai vocabulary, or the suppression reason
};

struct Recipient {
  RecipientKey key;
  std::string address;
  std::vector<std::string> fields;  // values for Campaign::fields
  Status status;
};

struct Attempt {
  std::int64_t time_ms = 0;
  std::string mx_host;
  std::string mx_address;
  bool tls = false;
  std::string tls_detail;  // "TLSv1.3 TLS_AES_256_GCM_SHA384"
  int code = 0;            // 0: no reply (network error, DNS failure)
  std::string enhanced;
  std::string text;            // reply text, or the local error description
  std::string classification;  // e.g. "delivered", "deferred", "bounced hard userunknown"
};

// The result of one attempt for one recipient, as recorded by record().
struct Outcome {
  RecipientKey key;
  std::int64_t previous_due_ms = 0;  // the schedule entry to remove (Status::next_attempt_ms
                                     // as returned by due())
  Status status;                     // the new status; next_attempt_ms used if not final
  std::optional<Attempt> attempt;    // appended to the attempt log when present
};

struct Counts {
  std::uint64_t queued = 0, delivered = 0, deferred = 0, bounced = 0, expired = 0,
                suppressed = 0;
  std::uint64_t total() const { return queued + delivered + deferred + bounced + expired + suppressed; }
  std::uint64_t pending() const { return queued + deferred; }
};

struct Suppression {
  std::string address;  // lower-cased
  std::string reason;   // "hard-bounce userunknown", "complaint", "unsubscribe", "import"
  std::int64_t time_ms = 0;
};

// Streams a campaign's recipients into the store. Not thread-safe (one writer).
// Destroying it without commit() aborts: nothing of it stays visible. It must not
// outlive the Store that made it.
class CampaignWriter {
 public:
  virtual ~CampaignWriter() = default;
  virtual CampaignId id() const = 0;
  // Buffers the recipient; writes in batches. Its status is stored as given (state
  // queued with next_attempt_ms, or suppressed with its reason, or any other).
  // recipient.key.recipient must be greater than the previous one's (gaps allowed;
  // std::invalid_argument otherwise); recipient.key.campaign is ignored (id() is used).
  // After commit() or abort(): std::logic_error.
  virtual void add(const Recipient& recipient) = 0;
  // Writes what is buffered and the commit marker, synced. Afterwards the campaign
  // and every added recipient are visible and durable.
  virtual void commit() = 0;
  // Removes everything written so far (and compacts it away). No-op after commit()
  // or a previous abort().
  virtual void abort() = 0;
};

// Opaque position in the schedule for incremental due() scans.
struct ScheduleCursor {
  std::string after;  // schedule key of the last entry returned ("" = from the start)
  void reset() { after.clear(); }
};

class Store {
 public:
  virtual ~Store() = default;

  // Throws StoreError if the name exists or on disk failure.
  virtual std::unique_ptr<CampaignWriter> begin_campaign(Campaign campaign) = 0;

  virtual std::optional<Campaign> find_campaign(std::string_view name) = 0;
  virtual std::optional<Campaign> campaign(CampaignId id) = 0;
  virtual std::vector<Campaign> campaigns() = 0;  // committed ones, by id

  virtual std::optional<Recipient> recipient(RecipientKey key) = 0;
  // Calls fn for each recipient of the campaign in id order until fn returns false.
  virtual void for_each_recipient(CampaignId id, const std::function<bool(const Recipient&)>& fn) = 0;
  virtual std::vector<Attempt> attempts(RecipientKey key) = 0;  // oldest first
  // Scans the campaign's status records: cost proportional to its recipients (~0.4 s
  // per million measured on a busy 2-core machine). Fine for status and reports, not
  // for a per-message path.
  virtual Counts counts(CampaignId id) = 0;

  // Up to `limit` recipients of committed campaigns whose schedule entry is due at or
  // before now_ms and after `cursor`, in (due, campaign, recipient) order; advances
  // cursor past the last one returned. Reset the cursor to see entries again.
  // Each returned Status::next_attempt_ms is the due time of its schedule entry (pass
  // it back as Outcome::previous_due_ms). Entries of campaigns not yet committed are
  // skipped and do not move the cursor.
  virtual std::vector<Recipient> due(std::int64_t now_ms, std::size_t limit, ScheduleCursor& cursor) = 0;
  // The earliest schedule entry, optionally for one campaign only.
  virtual std::optional<std::int64_t> next_due_ms(std::optional<CampaignId> campaign = std::nullopt) = 0;

  // Applies outcomes as one synced batch: status replaced, schedule entry moved or
  // removed, attempt appended. The stored status says which schedule entry to remove
  // (previous_due_ms is a cross-check: if it differs, that entry is removed too), so
  // each recipient keeps at most one. Several outcomes for one recipient in one call
  // apply in order; outcomes for recipients that do not exist or whose campaign is
  // not committed are ignored. Outcomes for the same recipient must not be recorded
  // from two threads at once (the status is read, then rewritten).
  virtual void record(std::span<const Outcome> outcomes) = 0;

  // Suppression list, keyed by lower-cased address.
  virtual void suppress(const Suppression& entry) = 0;
  virtual std::optional<Suppression> suppression(std::string_view address) = 0;
  virtual void for_each_suppression(const std::function<bool(const Suppression&)>& fn) = 0;
  virtual bool unsuppress(std::string_view address) = 0;

  // Bytes used on disk (SST + WAL), for benchmarks and status.
  virtual std::uint64_t disk_bytes() = 0;
};

// Opens (creating if needed) the RocksDB store at `path`. Throws StoreError, e.g. when
// another process holds the lock.
std::unique_ptr<Store> open_rocksdb_store(const std::string& path);

}  // namespace kurier::queue
