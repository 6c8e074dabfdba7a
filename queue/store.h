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

// A failed store operation, with a kind a caller can branch on (after RocksDB's
// Status::IsNoSpace() and friends) instead of searching the message. The kind is set
// where the store meets RocksDB and the file system; the message names the queue and
// the cause for people.
class StoreError : public std::runtime_error {
 public:
  enum class Kind {
    lock_held,   // another process (or another open in this one) holds the queue
    no_space,    // the disk or quota is full (ENOSPC)
    corruption,  // a record or file that does not decode
    io,          // any other I/O error: read-only file system, EIO, permissions
    other,       // a misuse or a limit: duplicate campaign name, unknown format
  };
  explicit StoreError(const std::string& what, Kind kind = Kind::other) : std::runtime_error(what), kind_(kind) {}

  Kind kind() const noexcept { return kind_; }
  bool is_lock_held() const noexcept { return kind_ == Kind::lock_held; }
  bool is_no_space() const noexcept { return kind_ == Kind::no_space; }
  bool is_corruption() const noexcept { return kind_ == Kind::corruption; }
  bool is_io_error() const noexcept { return kind_ == Kind::io; }

 private:
  Kind kind_;
};

enum class State : std::uint8_t {
  queued = 0,      // never tried yet
  delivered = 1,   // 2xx from the MX
  deferred = 2,    // 4xx or temporary failure; retried at next_attempt_ms
  bounced = 3,     // 5xx or permanent DNS failure
  expired = 4,     // still failing temporarily after max age
  suppressed = 5,  // never sent: hygiene verdict or suppression list
  cancelled = 6,   // never sent: the operator cancelled its campaign first
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

// Later events attach to a recipient after its outcome (docs/DESIGN.md "Recipient
// states"). They never change the state: a late bounce leaves a delivered recipient
// `delivered` (the MX did say 250, and reports count deliveries by the MX's answer)
// and shows as its latest event instead. A distinct state was rejected: it would
// hide the 250 and make "delivered" counts depend on mail arriving days later.
enum class EventKind : std::uint8_t {
  late_bounce = 1,  // a DSN (hard or soft) after the MX accepted the message
  complaint = 2,    // an ARF feedback report (abuse, fraud, ...)
  unsubscribe = 3,  // an ARF opt-out / unsubscribe report
  autoreply = 4,    // out-of-office and other auto-replies: noted, never a bounce
  delay = 5,        // a delay DSN: noted only, the message may still arrive
};
const char* to_string(EventKind kind);

struct Event {
  EventKind kind = EventKind::late_bounce;
  std::int64_t time_ms = 0;
  std::string category;  // hard, soft, block, other ("" for autoreply, complaint, ...)
  std::string reason;    // Sisimai vocabulary, or "complaint abuse", "vacation", ...
  std::string detail;    // status and diagnostic text, or the feedback type
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
  // The latest later event (see EventKind); the full list is events(). Kept apart
  // from the status record: filled by recipient() and for_each_recipient(), left
  // empty by due(); record() ignores it, and add_event() never touches the status,
  // so the two never race over one record.
  std::optional<Event> event;
  // Temporary failures that advanced the retry schedule. Greylisting and throttling
  // deferrals count in `attempts` but not here, so they do not push the next retry out.
  std::uint16_t backoff = 0;
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

// What an outcome or event means for its address across campaigns: the suppression
// list and the count of soft bounces in a row. Applied in the same synced batch as
// the outcome or event that carries it.
struct AddressUpdate {
  enum class Kind : std::uint8_t {
    delivered,    // resets the soft-bounce count
    soft_bounce,  // counts one more; at soft_limit the address is suppressed
    suppress,     // suppressed now (hard bounce, complaint, unsubscribe)
  };
  Kind kind = Kind::delivered;
  std::string address;
  // suppress: the suppression reason ("hard-bounce userunknown", "complaint abuse");
  // soft_bounce: the bounce reason (the suppression says "soft-bounce <reason> xN").
  std::string reason;
  std::uint32_t soft_limit = 0;  // soft_bounce: suppress at this many in a row; 0 never
  std::int64_t time_ms = 0;
};

// The result of one attempt for one recipient, as recorded by record().
struct Outcome {
  RecipientKey key;
  std::int64_t previous_due_ms = 0;  // the schedule entry to remove (Status::next_attempt_ms
                                     // as returned by due())
  Status status;                     // the new status; next_attempt_ms used if not final
  std::optional<Attempt> attempt;    // appended to the attempt log when present
  std::optional<AddressUpdate> address_update;
};

struct Counts {
  std::uint64_t queued = 0, delivered = 0, deferred = 0, bounced = 0, expired = 0,
                suppressed = 0, cancelled = 0;
  std::uint64_t total() const {
    return queued + delivered + deferred + bounced + expired + suppressed + cancelled;
  }
  std::uint64_t pending() const { return queued + deferred; }
  // Recipients by their latest event (not part of total(): events come on top of states).
  std::uint64_t late_bounce = 0, complaint = 0, unsubscribe = 0, autoreply = 0, delay = 0;
};

struct EventResult {
  bool applied = false;     // false: no such recipient (or campaign not committed)
  bool suppressed = false;  // the address update added the address to the list
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
  // it back as Outcome::previous_due_ms). Entries of campaigns not yet committed, and
  // of the campaigns in `held` (sorted; paused or cancelled ones), are skipped and do
  // not move the cursor; skipping costs one seek per (due time, campaign), not one
  // step per recipient, so a paused million-recipient intake is passed over at once.
  virtual std::vector<Recipient> due(std::int64_t now_ms, std::size_t limit, ScheduleCursor& cursor,
                                     std::span<const CampaignId> held = {}) = 0;
  // The earliest schedule entry, optionally for one campaign only.
  virtual std::optional<std::int64_t> next_due_ms(std::optional<CampaignId> campaign = std::nullopt) = 0;

  // Applies outcomes as one synced batch: status replaced, schedule entry moved or
  // removed, attempt appended. The stored status says which schedule entry to remove
  // (previous_due_ms is a cross-check: if it differs, that entry is removed too), so
  // each recipient keeps at most one. Several outcomes for one recipient in one call
  // apply in order; outcomes for recipients that do not exist or whose campaign is
  // not committed are ignored. Outcomes for the same recipient must not be recorded
  // from two threads at once (the status is read, then rewritten). Address updates
  // are applied in the same batch; calls that carry them are serialised with each
  // other and with add_event() (the soft-bounce count is read, then rewritten).
  virtual void record(std::span<const Outcome> outcomes) = 0;

  // Appends `event` to the recipient's event log and makes it the latest event on its
  // Status (state and schedule unchanged), with the optional address update, as one
  // synced batch. Safe to call concurrently with record() (e.g. the bounce listener
  // while the engine delivers).
  virtual EventResult add_event(RecipientKey key, const Event& event,
                                const std::optional<AddressUpdate>& update = std::nullopt) = 0;
  virtual std::vector<Event> events(RecipientKey key) = 0;  // oldest first
  // Soft bounces of the address in a row (across campaigns) since its last delivery.
  virtual std::uint32_t soft_bounces(std::string_view address) = 0;

  // Suppression list, keyed by lower-cased address. suppress() replaces an existing
  // entry; address updates (record(), add_event()) keep the first one.
  virtual void suppress(const Suppression& entry) = 0;
  // All entries in one synced batch: all are stored or, on a failure, none.
  virtual void suppress_all(std::span<const Suppression> entries) = 0;
  virtual std::optional<Suppression> suppression(std::string_view address) = 0;
  virtual void for_each_suppression(const std::function<bool(const Suppression&)>& fn) = 0;
  virtual bool unsuppress(std::string_view address) = 0;

  // Control records: what the operator and the engine decided that must outlive a
  // restart (campaign pause/cancel, admin suspensions, webhook positions), by name.
  // Values are opaque to the store (the engine keeps JSON). put_control() and
  // erase_control() are synced; for_each_control() visits names starting with
  // `prefix` in byte order until fn returns false.
  virtual std::optional<std::string> control(std::string_view name) = 0;
  virtual void put_control(std::string_view name, std::string_view value) = 0;
  virtual void erase_control(std::string_view name) = 0;
  virtual void for_each_control(std::string_view prefix,
                                const std::function<bool(std::string_view name, std::string_view value)>& fn) = 0;

  // Bytes used on disk (SST + WAL), for benchmarks and status.
  virtual std::uint64_t disk_bytes() = 0;
};

enum class Access {
  read_write,  // the one owner: creates the queue if needed; takes its lock
  // A reader beside the owner (e.g. `kurier report` while `kurier serve` runs): sees
  // what the owner had written when it opened (a RocksDB secondary instance, caught up
  // once), takes no lock, and throws StoreError for any write. The queue must exist.
  read_only,
};

// Opens the RocksDB store at `path`. Throws StoreError, e.g. one with is_lock_held()
// when another process holds the queue (read_write only).
std::unique_ptr<Store> open_rocksdb_store(const std::string& path, Access access = Access::read_write);

}  // namespace kurier::queue
