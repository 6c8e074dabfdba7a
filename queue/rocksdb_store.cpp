// The RocksDB implementation of queue::Store (contract in store.h, key layout in codec.h).
// Any thread: our in-memory state (campaign sets, schedule low-water mark) sits behind
// one mutex never held across I/O. Every bad rocksdb::Status becomes a StoreError here.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <unordered_set>
#include <utility>

#include <rocksdb/cache.h>
#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/table_properties_collectors.h>
#include <rocksdb/write_batch.h>

#include "common/log.h"
#include "common/text.h"
#include "queue/codec.h"
#include "queue/store.h"

namespace kurier::queue {
namespace {

// Recipients per intake flush (three WriteBatches, ~100 KB of WAL together): large
// enough to amortise the write-thread handoff and the WAL append, small enough that
// a writer's buffer stays small however long the recipient list is.
constexpr std::size_t kIntakeBatchRecipients = 1000;
// Schedule-entry deletions per batch when removing an uncommitted campaign, so
// cleaning up a million-recipient intake never builds one 30 MB batch.
constexpr std::size_t kCleanupBatchKeys = 10000;

// Memory: the scale target is 1,000,000 queued recipients with a process RSS under
// 256 MB. RocksDB's share is bounded by the memtables (3 x 32 MB) plus the block
// cache (32 MB), which also holds index and filter blocks (see make_options()).
constexpr std::size_t kWriteBufferBytes = 32u << 20;
constexpr int kMaxWriteBuffers = 3;
// Memtable Bloom filter size as a share of kWriteBufferBytes: 640 KB per memtable.
constexpr double kMemtableBloomRatio = 0.02;
constexpr std::size_t kBlockCacheBytes = 32u << 20;
// 16 shards of 2 MB: fewer lock collisions than one shard, while a shard still holds
// many 16 KB data blocks and 4 KB index/filter partitions.
constexpr int kBlockCacheShardBits = 4;
// Forces a memtable flush once this much WAL is live: bounds WAL disk use (it
// counts in disk_bytes()) and recovery time after a crash.
constexpr std::uint64_t kMaxTotalWalBytes = 128u << 20;
// kurier also holds thousands of sockets; RocksDB's table cache must not take the
// descriptor limit (a 1M-recipient store is a handful of SST files).
constexpr int kMaxOpenFiles = 512;
// Deletion-triggered compaction: an SST with >= kDeletionTrigger tombstones within
// any kDeletionWindow consecutive entries is compacted soon. record() deletes a
// schedule entry per outcome, so the head of the schedule is mostly tombstones.
constexpr std::size_t kDeletionWindow = 128 * 1024;
constexpr std::size_t kDeletionTrigger = 32 * 1024;

const std::string kScheduleEnd(1, static_cast<char>(codec::kSchedulePrefix + 1));  // above every schedule key
const std::string kLockHint = "lock held by another process (is kurier serve running?)";

bool is_lock_error(const rocksdb::Status& s) {
  // RocksDB's LockFile() reports a held lock as a plain IOError (no subcode; errno
  // EAGAIN, or ENOLCK within this process), so its text is all there is: RocksDB 7.8
  // says "While lock file: <path>/LOCK: Resource temporarily unavailable" when another
  // process holds the lock, and "lock hold by current process, ..." for
  // a second open within this process. Failing to create or open the LOCK file
  // ("While open a file for lock") is a different problem and keeps its own text.
  if (!s.IsIOError()) return false;
  auto text = s.ToString();
  return text.find("While lock file") != std::string::npos ||
         text.find("lock hold by current process") != std::string::npos;
}

// The StoreError kind of a failed rocksdb::Status: the one place that reads Status codes.
StoreError::Kind kind_of(const rocksdb::Status& s) {
  if (s.IsNoSpace()) return StoreError::Kind::no_space;
  if (s.IsCorruption()) return StoreError::Kind::corruption;
  if (is_lock_error(s)) return StoreError::Kind::lock_held;
  if (s.IsIOError() || s.IsPathNotFound()) return StoreError::Kind::io;
  return StoreError::Kind::other;
}

// The kind of a failed system call (our own file operations beside RocksDB's).
StoreError::Kind kind_of_errno(int error) {
  return error == ENOSPC || error == EDQUOT ? StoreError::Kind::no_space : StoreError::Kind::io;
}

[[noreturn]] void fail(const std::string& what, const rocksdb::Status& s) {
  throw StoreError("queue: " + what + ": " + s.ToString(), kind_of(s));
}

void check(const rocksdb::Status& s, const char* what) {
  if (!s.ok()) fail(what, s);
}

[[noreturn]] void corrupt(std::string_view what, std::string_view key) {
  throw StoreError("queue: corrupt " + std::string(what) + " record (key " + text::to_hex(key) + ")",
                   StoreError::Kind::corruption);
}

std::string_view view(const rocksdb::Slice& s) { return s.ToStringView(); }

// The smallest key greater than every key starting with `prefix`; "" if none.
std::string prefix_end(std::string prefix) {
  while (!prefix.empty()) {
    auto& last = prefix.back();
    if (static_cast<unsigned char>(last) != 0xff) {
      last = static_cast<char>(static_cast<unsigned char>(last) + 1);
      return prefix;
    }
    prefix.pop_back();
  }
  return prefix;
}


rocksdb::CompressionType pick(const std::vector<rocksdb::CompressionType>& supported,
                              std::initializer_list<rocksdb::CompressionType> wanted) {
  for (auto c : wanted)
    if (std::find(supported.begin(), supported.end(), c) != supported.end()) return c;
  return rocksdb::kNoCompression;
}

// Free space a queue needs before RocksDB opens it: the new WAL, MANIFEST and
// OPTIONS files of an open take a few tens of KB; the rest is room for the first
// group commits. (A DB::Open that runs out of space half-way trips an assertion in
// Debian's RocksDB and aborts instead of returning an error.)
constexpr std::size_t kOpenReserveBytes = 1u << 20;

// Reserves kOpenReserveBytes in the queue directory (posix_fallocate: no data
// written, so it costs little on every open), then removes them: a full or read-only
// queue becomes a StoreError naming the directory and the cause.
void check_writable(const std::string& dir) {
  const std::string probe = dir + "/.kurier-space-probe";
  int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    const int error = errno;
    throw StoreError("queue " + dir + ": cannot write: " + std::strerror(error), kind_of_errno(error));
  }
  const int error = ::posix_fallocate(fd, 0, static_cast<off_t>(kOpenReserveBytes));
  ::close(fd);
  ::unlink(probe.c_str());
  if (error != 0)
    throw StoreError("queue " + dir + ": cannot write " + std::to_string(kOpenReserveBytes >> 10) +
                     " KB: " + std::strerror(error),
                     kind_of_errno(error));
}

// RocksDB's info log lines as spdlog lines (any thread; spdlog is thread-safe).
class SpdlogRocksLogger final : public rocksdb::Logger {
 public:
  SpdlogRocksLogger() : rocksdb::Logger(rocksdb::InfoLogLevel::WARN_LEVEL), log_(log::get("rocksdb")) {}
  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override { Logv(rocksdb::InfoLogLevel::INFO_LEVEL, format, ap); }
  void Logv(const rocksdb::InfoLogLevel level, const char* format, va_list ap) override {
    if (level < GetInfoLogLevel()) return;
    char line[1024];
    std::vsnprintf(line, sizeof line, format, ap);
    // A failed open is thrown as a StoreError carrying the same status (a held lock is
    // expected while `kurier serve` runs): the caller reports it, once.
    if (std::string_view(line).find("DB::Open() failed") != std::string_view::npos) return;
    log_->log(level >= rocksdb::InfoLogLevel::ERROR_LEVEL ? spdlog::level::err : spdlog::level::warn, "{}", line);
  }

 private:
  std::shared_ptr<spdlog::logger> log_;
};

rocksdb::Options make_options() {
  rocksdb::Options o;
  o.create_if_missing = true;
  // Point-in-time recovery (the default, stated for the reader): after a crash the WAL
  // is replayed up to the first torn record. Intake batches are written without
  // fsync; commit() syncs, and a campaign without its commit marker is removed at
  // open, so a torn intake tail loses nothing that was promised.
  o.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;
  // Two shared cores: one flush and one compaction at a time is all the machine has.
  o.max_background_jobs = 2;
  o.max_subcompactions = 1;
  // Write SSTs and the WAL back to disk in 1 MB steps instead of one large burst at
  // fsync time: commit() and record() sync the WAL, and their latency should not
  // depend on how much intake preceded them.
  o.bytes_per_sync = 1u << 20;
  o.wal_bytes_per_sync = 1u << 20;
  // Memtables: 32 MB each (~150k recipients of intake), up to 3 so writes continue
  // while one is being flushed; see kWriteBufferBytes for the memory budget.
  o.write_buffer_size = kWriteBufferBytes;
  o.max_write_buffer_number = kMaxWriteBuffers;
  // A whole-key Bloom filter per memtable (~11 bits per key). Intake checks every
  // recipient against the suppression list while filling the memtable with the
  // campaign; almost all checks miss, and without the filter each miss searched the
  // memtable skip lists (measured: 14 % of intake CPU, see bench/peers/notes.md).
  o.memtable_whole_key_filtering = true;
  o.memtable_prefix_bloom_size_ratio = kMemtableBloomRatio;
  o.max_total_wal_size = kMaxTotalWalBytes;
  o.max_open_files = kMaxOpenFiles;
  // Iterators and snapshots are released on engine threads; let RocksDB delete
  // obsolete files on its own threads instead of inside those calls.
  o.avoid_unnecessary_blocking_io = true;
  // Levels sized from the bottom up, so most data sits in the last level, which is
  // the one compressed hardest (below), and space amplification stays near 1.1.
  o.level_compaction_dynamic_level_bytes = true;
  // Compression: LZ4 where data is young and rewritten soon (cheap on the flush
  // path, which competes with intake for two cores), ZSTD in the last level where
  // most bytes live for the campaign's lifetime. Debian's librocksdb links both;
  // fall back gracefully if a build does not.
  auto supported = rocksdb::GetSupportedCompressions();
  auto fast = pick(supported, {rocksdb::kLZ4Compression, rocksdb::kSnappyCompression});
  auto strong = pick(supported, {rocksdb::kZSTD, rocksdb::kLZ4Compression, rocksdb::kSnappyCompression});
  o.compression_per_level.assign(static_cast<std::size_t>(o.num_levels), fast);
  o.bottommost_compression = strong;
  // RocksDB's info log goes to our "rocksdb" logger, warnings and errors only, not
  // to a LOG file in the queue directory: on a full disk that file is the first
  // writer to fail, and RocksDB (Debian's build keeps its assertions) aborts the
  // process on the next line it logs there, the error report itself.
  o.info_log = std::make_shared<SpdlogRocksLogger>();
  o.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
  o.table_properties_collector_factories.emplace_back(
      rocksdb::NewCompactOnDeletionCollectorFactory(kDeletionWindow, kDeletionTrigger));

  rocksdb::BlockBasedTableOptions t;
  t.block_cache = rocksdb::NewLRUCache(kBlockCacheBytes, kBlockCacheShardBits);
  // Index and filter blocks live in (and are bounded by) the block cache rather than
  // on the heap per open file; L0's are pinned because every lookup consults them.
  t.cache_index_and_filter_blocks = true;
  t.pin_l0_filter_and_index_blocks_in_cache = true;
  // ...and are partitioned into 4 KB pieces with a small pinned top level. A single
  // filter for a million-recipient SST is ~4 MB, larger than a cache shard: it was
  // never cached, and every record() and due() read it again from the file and
  // verified its checksum (measured: 60% of delivery-loop CPU, 8k outcomes/s).
  t.index_type = rocksdb::BlockBasedTableOptions::kTwoLevelIndexSearch;
  t.partition_filters = true;
  t.metadata_block_size = 4096;
  t.pin_top_level_index_and_filter = true;
  t.cache_index_and_filter_blocks_with_high_priority = true;
  // Bloom filters: recipient(), record()'s status reads and suppression checks are
  // point lookups, and suppression checks mostly miss.
  t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  t.optimize_filters_for_memory = true;
  // 16 KB blocks: records are ~20-60 bytes, larger blocks compress noticeably better
  // and we mostly scan (due(), counts(), for_each_recipient()).
  t.block_size = 16u << 10;
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
  return o;
}

class RocksStore;

class RocksCampaignWriter final : public CampaignWriter {
 public:
  RocksCampaignWriter(RocksStore& store, Campaign campaign);
  ~RocksCampaignWriter() override;
  RocksCampaignWriter(const RocksCampaignWriter&) = delete;
  RocksCampaignWriter& operator=(const RocksCampaignWriter&) = delete;

  CampaignId id() const override { return campaign_.id; }
  void add(const Recipient& recipient) override;
  void commit() override;
  void abort() override;

 private:
  enum class Phase { open, committed, aborted };
  void flush_batch();

  RocksStore& store_;
  Campaign campaign_;
  Phase phase_ = Phase::open;
  // One batch per record type, written in this order. The memtable's skip list
  // remembers where its last insert went, so keys ascending within each batch insert
  // in near-constant time; interleaving r, t and s keys would send every insert back
  // to the top of the list (measured: 2.3x the CPU per recipient). (The per-prefix insert
  // hint option, memtable_insert_with_hint_prefix_extractor, trips assertions in
  // Debian's librocksdb 7.8, which is built with them enabled.)
  rocksdb::WriteBatch records_;    // r: address and fields
  rocksdb::WriteBatch statuses_;   // t
  rocksdb::WriteBatch schedule_;   // s, and at commit the campaign record and name
  std::size_t batched_ = 0;
  std::uint32_t count_ = 0;
  RecipientId last_id_ = 0;
  std::string batch_min_schedule_;  // smallest schedule key in schedule_ ("" if none)
  std::string key_, value_;         // reused encode buffers
};

class RocksStore final : public Store {
 public:
  RocksStore(std::string path, Access access);
  ~RocksStore() override;
  RocksStore(const RocksStore&) = delete;
  RocksStore& operator=(const RocksStore&) = delete;

  std::unique_ptr<CampaignWriter> begin_campaign(Campaign campaign) override;
  std::optional<Campaign> find_campaign(std::string_view name) override;
  std::optional<Campaign> campaign(CampaignId id) override;
  std::vector<Campaign> campaigns() override;
  std::optional<Recipient> recipient(RecipientKey key) override;
  void for_each_recipient(CampaignId id, const std::function<bool(const Recipient&)>& fn) override;
  std::vector<Attempt> attempts(RecipientKey key) override;
  Counts counts(CampaignId id) override;
  std::vector<Recipient> due(std::int64_t now_ms, std::size_t limit, ScheduleCursor& cursor,
                             std::span<const CampaignId> held) override;
  std::optional<std::int64_t> next_due_ms(std::optional<CampaignId> campaign) override;
  void record(std::span<const Outcome> outcomes) override;
  EventResult add_event(RecipientKey key, const Event& event, const std::optional<AddressUpdate>& update) override;
  std::vector<Event> events(RecipientKey key) override;
  std::uint32_t soft_bounces(std::string_view address) override;
  void suppress(const Suppression& entry) override;
  std::optional<std::string> control(std::string_view name) override;
  void put_control(std::string_view name, std::string_view value) override;
  void erase_control(std::string_view name) override;
  void for_each_control(std::string_view prefix,
                        const std::function<bool(std::string_view, std::string_view)>& fn) override;
  void suppress_all(std::span<const Suppression> entries) override;
  std::optional<Suppression> suppression(std::string_view address) override;
  void for_each_suppression(const std::function<bool(const Suppression&)>& fn) override;
  bool unsuppress(std::string_view address) override;
  std::uint64_t disk_bytes() override;

 private:
  friend class RocksCampaignWriter;
  using CampaignSet = std::set<CampaignId>;

  // A snapshot released on scope exit.
  class Snapshot {
   public:
    // A reader (Access::read_only) sees a fixed state already and has no snapshots.
    Snapshot(rocksdb::DB& db, bool read_only) : db_(db), snapshot_(read_only ? nullptr : db.GetSnapshot()) {}
    ~Snapshot() {
      if (snapshot_) db_.ReleaseSnapshot(snapshot_);
    }
    Snapshot(const Snapshot&) = delete;
    Snapshot& operator=(const Snapshot&) = delete;
    const rocksdb::Snapshot* get() const { return snapshot_; }

   private:
    rocksdb::DB& db_;
    const rocksdb::Snapshot* snapshot_;
  };

  void write(rocksdb::WriteBatch& batch, bool sync, const char* what);
  std::unique_ptr<rocksdb::Iterator> iterator(const rocksdb::ReadOptions& options);
  std::optional<std::string> get(const std::string& key, const rocksdb::ReadOptions& options = {});

  void open_secondary();
  void init_format();
  void recover_campaigns();
  void init_low_water();
  // Deletes every record of an uncommitted campaign (schedule entries found through
  // its statuses, then range deletions) and compacts the ranges to give the space
  // back. Idempotent: the campaign record goes last, so a crash midway repeats it.
  void remove_campaign_data(CampaignId id);

  std::shared_ptr<const CampaignSet> committed() {
    std::lock_guard lock(mutex_);
    return committed_;
  }
  void mark_committed(CampaignId id, const std::string& name);
  void forget_pending(const std::string& name);
  // After a write that added schedule entries, the smallest of them lowers the
  // low-water mark (called after the write: see due()).
  void note_schedule_insert(const std::string& key);

  // Recipient data and status with one MultiGet; nullopt where the recipient is absent.
  std::vector<std::optional<Recipient>> load_recipients(const rocksdb::ReadOptions& options,
                                                        std::span<const RecipientKey> keys);
  std::optional<Event> latest_event(const rocksdb::ReadOptions& options, RecipientKey key);
  // Every record under `prefix` for one recipient (attempt or event log), in key order.
  template <typename Record>
  std::vector<Record> read_log(char prefix, RecipientKey key, const char* what,
                               bool (*decode)(std::string_view, Record&));
  // Stages address updates (in order) into `batch` and returns how many addresses they
  // newly suppress. The caller holds event_mutex_ until the batch is written.
  std::size_t stage_address_updates(std::span<const AddressUpdate* const> updates, rocksdb::WriteBatch& batch);

  std::string path_;
  std::unique_ptr<rocksdb::DB> db_;
  bool read_only_ = false;      // Access::read_only: every write throws
  std::string secondary_dir_;   // Access::read_only: the reader's private directory
  // The first failed write (disk full, read-only, I/O error), "" while none. Later
  // writes fail at once with it: RocksDB must not be handed another write once its
  // WAL writer has failed (Debian's build asserts on that and aborts the process).
  std::atomic<bool> write_failed_{false};
  std::mutex write_failure_mutex_;  // guards write_failure_; never held across I/O
  std::string write_failure_;
  StoreError::Kind write_failure_kind_ = StoreError::Kind::other;

  std::mutex mutex_;
  CampaignId next_id_ = 1;
  std::unordered_set<std::string> pending_names_;  // begun, neither committed nor aborted
  // Copy-on-write: readers take the pointer once per call; commit() swaps in a copy.
  // Committed campaigns are never removed, so a stale copy only lacks new ones.
  std::shared_ptr<const CampaignSet> committed_ = std::make_shared<CampaignSet>();
  // No live schedule key is smaller than low_water_. Scans start there, skipping the
  // tombstones record() leaves at the head of the schedule. Lowered by every insert;
  // raised by a head scan (see due()), at most one at a time (tracking_), which
  // meanwhile collects the smallest key inserted in tracked_min_.
  std::string low_water_ = kScheduleEnd;
  bool tracking_ = false;
  std::string tracked_min_;

  // Serialises the read-modify-write of event-log counters, soft-bounce counts and
  // "suppress unless listed" checks (add_event() and record() calls with address
  // updates). Held across their synced write, unlike mutex_: the delivery engine
  // records from one writer thread, so only the bounce listener ever waits here.
  std::mutex event_mutex_;
};

// --- RocksCampaignWriter ----------------------------------------------------

RocksCampaignWriter::RocksCampaignWriter(RocksStore& store, Campaign campaign)
    : store_(store), campaign_(std::move(campaign)) {}

RocksCampaignWriter::~RocksCampaignWriter() {
  if (phase_ != Phase::open) return;
  try {
    abort();
  } catch (const std::exception& e) {
    // Whatever stays behind is uncommitted and removed at the next open.
    log::get("queue")->warn("abort failed campaign={} error=\"{}\"", campaign_.id, e.what());
  }
}

void RocksCampaignWriter::add(const Recipient& recipient) {
  if (phase_ != Phase::open) throw std::logic_error("queue: add() after commit() or abort()");
  // Increasing ids keep recipient_count exact and rule out a second schedule entry
  // for one recipient; rows of a recipients file arrive in order anyway.
  if (recipient.key.recipient <= last_id_)
    throw std::invalid_argument("queue: recipient ids must increase within a campaign (got " +
                                std::to_string(recipient.key.recipient) + " after " +
                                std::to_string(last_id_) + ")");
  RecipientKey key{campaign_.id, recipient.key.recipient};

  key_.clear();
  codec::append_recipient_key(key_, codec::kRecipientPrefix, key);
  value_.clear();
  codec::encode_recipient_data(value_, recipient.address, recipient.fields);
  check(records_.Put(key_, value_), "intake failed");

  key_[0] = codec::kStatusPrefix;
  value_.clear();
  codec::encode_status(value_, recipient.status, 0);
  check(statuses_.Put(key_, value_), "intake failed");

  if (!is_final(recipient.status.state)) {
    key_.clear();
    codec::append_schedule_key(key_, recipient.status.next_attempt_ms, key);
    check(schedule_.Put(key_, rocksdb::Slice()), "intake failed");
    if (batch_min_schedule_.empty() || key_ < batch_min_schedule_) batch_min_schedule_ = key_;
  }
  last_id_ = recipient.key.recipient;
  ++count_;
  if (++batched_ >= kIntakeBatchRecipients) flush_batch();
}

void RocksCampaignWriter::flush_batch() {
  // WAL on, no fsync: commit() syncs the WAL, which covers these writes too.
  store_.write(records_, false, "intake failed");
  store_.write(statuses_, false, "intake failed");
  store_.write(schedule_, false, "intake failed");
  store_.note_schedule_insert(batch_min_schedule_);
  records_.Clear();
  statuses_.Clear();
  schedule_.Clear();
  batched_ = 0;
  batch_min_schedule_.clear();
}

void RocksCampaignWriter::commit() {
  if (phase_ != Phase::open) throw std::logic_error("queue: commit() after commit() or abort()");
  campaign_.recipient_count = count_;
  value_.clear();
  codec::encode_campaign(value_, campaign_, true);
  check(schedule_.Put(codec::campaign_key(campaign_.id), value_), "commit failed");
  value_.clear();
  codec::encode_u32_value(value_, campaign_.id);
  check(schedule_.Put(codec::name_key(campaign_.name), value_), "commit failed");
  // The remaining recipients go first, then the last schedule entries with the
  // committed record and the name index in one synced write. The WAL is replayed
  // in order, so if the commit marker survives a crash, everything before it does.
  store_.write(records_, false, "commit failed");
  store_.write(statuses_, false, "commit failed");
  store_.write(schedule_, true, "commit failed");
  store_.note_schedule_insert(batch_min_schedule_);
  records_.Clear();
  statuses_.Clear();
  schedule_.Clear();
  batched_ = 0;
  phase_ = Phase::committed;
  store_.mark_committed(campaign_.id, campaign_.name);
}

void RocksCampaignWriter::abort() {
  if (phase_ != Phase::open) return;  // after commit() the campaign stays
  phase_ = Phase::aborted;
  records_.Clear();
  statuses_.Clear();
  schedule_.Clear();
  store_.remove_campaign_data(campaign_.id);
  // Only now: if the removal failed (it threw), the name stays taken until the next
  // open removes what is left.
  store_.forget_pending(campaign_.name);
}

// --- RocksStore: open, internals ----------------------------------------------

RocksStore::RocksStore(std::string path, Access access) : path_(std::move(path)) {
  if (access == Access::read_only) {
    open_secondary();
    return;
  }
  std::error_code ec;
  std::filesystem::create_directories(path_, ec);
  if (ec) throw StoreError("queue: cannot create " + path_ + ": " + ec.message(), kind_of_errno(ec.value()));
  check_writable(path_);

  rocksdb::DB* raw = nullptr;
  auto s = rocksdb::DB::Open(make_options(), path_, &raw);
  if (!s.ok()) {
    if (is_lock_error(s))
      throw StoreError("queue: cannot open " + path_ + ": " + kLockHint + " [" + s.ToString() + "]",
                       StoreError::Kind::lock_held);
    fail("cannot open " + path_, s);
  }
  db_.reset(raw);
  init_format();
  recover_campaigns();
  init_low_water();
}

// A RocksDB secondary instance: it reads the owner's files without its lock and keeps
// its own info log in a private directory (removed on close). Uncommitted campaigns
// are left for the owner to remove; they stay invisible here as they do there.
void RocksStore::open_secondary() {
  if (!std::filesystem::exists(std::filesystem::path(path_) / "CURRENT"))
    throw StoreError("queue: " + path_ + " is not a kurier queue (no such database)", StoreError::Kind::io);
  char dir[] = "/tmp/kurier-reader-XXXXXX";
  if (!::mkdtemp(dir)) throw StoreError("queue: cannot create a reader directory in /tmp", kind_of_errno(errno));
  secondary_dir_ = dir;
  auto options = make_options();
  options.max_open_files = -1;  // a secondary must hold every table file it may read
  rocksdb::DB* raw = nullptr;
  auto s = rocksdb::DB::OpenAsSecondary(options, path_, secondary_dir_, &raw);
  if (!s.ok()) fail("cannot open " + path_ + " for reading", s);
  db_.reset(raw);
  check(db_->TryCatchUpWithPrimary(), "cannot read");
  read_only_ = true;
  init_format();
  recover_campaigns();
  init_low_water();
}

RocksStore::~RocksStore() {
  if (!secondary_dir_.empty()) {
    if (db_) (void)db_->Close();
    db_.reset();
    std::error_code ec;
    std::filesystem::remove_all(secondary_dir_, ec);
    return;
  }
  if (!db_) return;
  if (write_failed_.load()) {
    // Closing flushes through the writer that failed, which RocksDB's assertions
    // turn into an abort. Leaving it open is a crash as far as the queue is
    // concerned, and crashes lose nothing: every committed batch is in the synced WAL.
    (void)db_.release();
    return;
  }
  // Close() reports errors a destructor cannot throw; the WAL holds everything.
  auto s = db_->Close();
  if (!s.ok()) log::get("queue")->warn("close failed path={} error=\"{}\"", path_, s.ToString());
}

void RocksStore::write(rocksdb::WriteBatch& batch, bool sync, const char* what) {
  if (read_only_) throw StoreError("queue " + path_ + ": " + what + ": opened for reading only");
  rocksdb::WriteOptions w;
  w.sync = sync;
  if (write_failed_.load()) {
    std::lock_guard lock(write_failure_mutex_);
    throw StoreError(write_failure_, write_failure_kind_);  // the cause, not a symptom of it
  }
  auto s = db_->Write(w, &batch);  // concurrent writers: RocksDB groups them
  if (s.ok()) return;
  std::lock_guard lock(write_failure_mutex_);
  if (write_failure_.empty()) {
    write_failure_ = "queue " + path_ + ": " + what + ": " + s.ToString();
    write_failure_kind_ = kind_of(s);
  }
  write_failed_ = true;
  throw StoreError("queue " + path_ + ": " + what + ": " + s.ToString(), kind_of(s));
}

std::unique_ptr<rocksdb::Iterator> RocksStore::iterator(const rocksdb::ReadOptions& options) {
  return std::unique_ptr<rocksdb::Iterator>(db_->NewIterator(options));
}

std::optional<std::string> RocksStore::get(const std::string& key, const rocksdb::ReadOptions& options) {
  std::string value;
  auto s = db_->Get(options, key, &value);
  if (s.IsNotFound()) return std::nullopt;
  check(s, "read failed");
  return value;
}

void RocksStore::init_format() {
  auto key = codec::meta_key("format");
  if (auto v = get(key)) {
    auto version = codec::decode_u32_value(*v);
    if (!version) corrupt("format", key);
    if (*version != codec::kFormatVersion)
      throw StoreError("queue: " + path_ + " has format " + std::to_string(*version) + "; this kurier reads " +
                       std::to_string(codec::kFormatVersion));
    return;
  }
  // A fresh store (or one whose first open crashed before this write).
  if (read_only_) throw StoreError("queue: " + path_ + " is not a kurier queue (no format record)");
  rocksdb::WriteBatch batch;
  std::string value;
  codec::encode_u32_value(value, codec::kFormatVersion);
  check(batch.Put(key, value), "write failed");
  write(batch, true, "write failed");
}

void RocksStore::recover_campaigns() {
  if (auto v = get(codec::meta_key("next_cid"))) {
    auto next = codec::decode_u32_value(*v);
    if (!next) corrupt("meta", codec::meta_key("next_cid"));
    next_id_ = std::max<CampaignId>(*next, 1);
  }
  auto committed = std::make_shared<CampaignSet>();
  std::vector<CampaignId> uncommitted;
  const std::string lower(1, codec::kCampaignPrefix);
  const std::string upper = prefix_end(lower);
  rocksdb::Slice upper_slice(upper);
  rocksdb::ReadOptions ro;
  ro.iterate_upper_bound = &upper_slice;
  auto it = iterator(ro);
  for (it->Seek(lower); it->Valid(); it->Next()) {
    auto id = codec::parse_campaign_key(view(it->key()));
    Campaign c;
    bool is_committed = false;
    if (!id || !codec::decode_campaign(view(it->value()), c, is_committed)) corrupt("campaign", view(it->key()));
    // begin_campaign() writes next_cid and the record in one batch, but concurrent
    // begins may land out of order: never hand out an id that exists.
    if (*id >= next_id_) next_id_ = *id + 1;
    if (is_committed)
      committed->insert(*id);
    else
      uncommitted.push_back(*id);
  }
  check(it->status(), "read failed");
  it.reset();
  committed_ = std::move(committed);
  if (read_only_) return;
  for (auto id : uncommitted) {
    log::get("queue")->info("removing uncommitted campaign={} path={}", id, path_);
    remove_campaign_data(id);
  }
}

void RocksStore::init_low_water() {
  rocksdb::Slice upper(kScheduleEnd);
  rocksdb::ReadOptions ro;
  ro.iterate_upper_bound = &upper;
  auto it = iterator(ro);
  it->Seek(std::string(1, codec::kSchedulePrefix));
  check(it->status(), "read failed");
  low_water_ = it->Valid() ? it->key().ToString() : kScheduleEnd;
}

void RocksStore::remove_campaign_data(CampaignId id) {
  // Schedule entries are keyed by due time first, so no range covers one campaign's;
  // its statuses say where each one is (an uncommitted campaign's statuses are as
  // add() wrote them: record() ignores uncommitted campaigns; and add()'s flushes
  // write statuses before schedule entries, so no entry lacks its status).
  std::string lowest_schedule, highest_schedule;
  {
    const auto lower = codec::campaign_prefix(codec::kStatusPrefix, id);
    const auto upper = codec::campaign_prefix_end(codec::kStatusPrefix, id);
    rocksdb::Slice upper_slice(upper);
    rocksdb::ReadOptions ro;
    ro.iterate_upper_bound = &upper_slice;
    ro.fill_cache = false;  // a one-off scan must not evict the working set
    auto it = iterator(ro);
    rocksdb::WriteBatch batch;
    std::size_t batched = 0;
    codec::StoredStatus stored;
    for (it->Seek(lower); it->Valid(); it->Next()) {
      auto key = codec::parse_recipient_key(view(it->key()));
      if (!key || !codec::decode_status(view(it->value()), stored)) corrupt("status", view(it->key()));
      if (is_final(stored.status.state)) continue;
      auto skey = codec::schedule_key(stored.status.next_attempt_ms, *key);
      if (lowest_schedule.empty() || skey < lowest_schedule) lowest_schedule = skey;
      if (skey > highest_schedule) highest_schedule = skey;
      check(batch.Delete(skey), "cleanup failed");
      if (++batched >= kCleanupBatchKeys) {
        write(batch, false, "cleanup failed");
        batch.Clear();
        batched = 0;
      }
    }
    check(it->status(), "read failed");
    if (batched) write(batch, false, "cleanup failed");
  }
  rocksdb::WriteBatch batch;
  for (char prefix : {codec::kRecipientPrefix, codec::kStatusPrefix, codec::kAttemptPrefix, codec::kEventPrefix,
                      codec::kLatestEventPrefix})
    check(batch.DeleteRange(codec::campaign_prefix(prefix, id), codec::campaign_prefix_end(prefix, id)),
          "cleanup failed");
  check(batch.Delete(codec::campaign_key(id)), "cleanup failed");
  write(batch, true, "cleanup failed");

  // Range tombstones hide the data but free nothing until compaction meets them;
  // an aborted intake can be gigabytes, so compact its ranges now.
  rocksdb::CompactRangeOptions cro;
  cro.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForceOptimized;
  for (char prefix : {codec::kRecipientPrefix, codec::kStatusPrefix}) {
    auto begin = codec::campaign_prefix(prefix, id);
    auto end = codec::campaign_prefix_end(prefix, id);
    rocksdb::Slice b(begin), e(end);
    check(db_->CompactRange(cro, &b, &e), "cleanup compaction failed");
  }
  if (!lowest_schedule.empty()) {
    rocksdb::Slice b(lowest_schedule), e(highest_schedule);
    check(db_->CompactRange(cro, &b, &e), "cleanup compaction failed");
  }
}

void RocksStore::mark_committed(CampaignId id, const std::string& name) {
  std::lock_guard lock(mutex_);
  auto next = std::make_shared<CampaignSet>(*committed_);
  next->insert(id);
  committed_ = std::move(next);
  pending_names_.erase(name);
}

void RocksStore::forget_pending(const std::string& name) {
  std::lock_guard lock(mutex_);
  pending_names_.erase(name);
}

void RocksStore::note_schedule_insert(const std::string& key) {
  if (key.empty()) return;
  std::lock_guard lock(mutex_);
  if (key < low_water_) low_water_ = key;
  if (tracking_ && key < tracked_min_) tracked_min_ = key;
}

std::vector<std::optional<Recipient>> RocksStore::load_recipients(const rocksdb::ReadOptions& options,
                                                                  std::span<const RecipientKey> keys) {
  const auto n = keys.size();
  std::vector<std::string> k;
  k.reserve(2 * n);
  for (auto key : keys) k.push_back(codec::recipient_key(codec::kRecipientPrefix, key));
  for (auto key : keys) k.push_back(codec::recipient_key(codec::kStatusPrefix, key));
  std::vector<rocksdb::Slice> slices(k.begin(), k.end());
  std::vector<rocksdb::PinnableSlice> values(2 * n);
  std::vector<rocksdb::Status> statuses(2 * n);
  db_->MultiGet(options, db_->DefaultColumnFamily(), 2 * n, slices.data(), values.data(), statuses.data());

  std::vector<std::optional<Recipient>> out(n);
  codec::StoredStatus stored;
  for (std::size_t i = 0; i < n; ++i) {
    if (statuses[i].IsNotFound()) continue;
    check(statuses[i], "read failed");
    if (statuses[n + i].IsNotFound()) corrupt("status (missing)", k[n + i]);
    check(statuses[n + i], "read failed");
    auto& r = out[i].emplace();
    r.key = keys[i];
    if (!codec::decode_recipient_data(view(values[i]), r.address, r.fields)) corrupt("recipient", k[i]);
    if (!codec::decode_status(view(values[n + i]), stored)) corrupt("status", k[n + i]);
    r.status = std::move(stored.status);
  }
  return out;
}

// --- RocksStore: campaigns ------------------------------------------------------

std::unique_ptr<CampaignWriter> RocksStore::begin_campaign(Campaign campaign) {
  if (campaign.name.empty()) throw StoreError("queue: campaign name is empty");
  {
    std::lock_guard lock(mutex_);
    if (pending_names_.contains(campaign.name))
      throw StoreError("queue: campaign \"" + campaign.name + "\" already exists (being written)");
    if (next_id_ == std::numeric_limits<CampaignId>::max()) throw StoreError("queue: campaign ids exhausted");
    campaign.id = next_id_++;
    // Reserved before looking at the name index (outside the lock): commit() writes
    // the index before it releases the reservation, so one of the two checks sees
    // any other writer of this name.
    pending_names_.insert(campaign.name);
  }
  campaign.recipient_count = 0;
  try {
    if (auto existing = get(codec::name_key(campaign.name))) {
      auto id = codec::decode_u32_value(*existing);
      throw StoreError("queue: campaign \"" + campaign.name + "\" already exists (id " +
                       (id ? std::to_string(*id) : std::string("?")) + ")");
    }
    // The uncommitted record goes first and synced: any recipient data that reaches
    // the disk after it can be found and removed if the intake never commits.
    rocksdb::WriteBatch batch;
    std::string value;
    codec::encode_u32_value(value, campaign.id + 1);
    check(batch.Put(codec::meta_key("next_cid"), value), "write failed");
    value.clear();
    codec::encode_campaign(value, campaign, false);
    check(batch.Put(codec::campaign_key(campaign.id), value), "write failed");
    write(batch, true, "write failed");
  } catch (...) {
    forget_pending(campaign.name);
    throw;
  }
  return std::make_unique<RocksCampaignWriter>(*this, std::move(campaign));
}

std::optional<Campaign> RocksStore::find_campaign(std::string_view name) {
  auto key = codec::name_key(name);
  auto v = get(key);
  if (!v) return std::nullopt;
  auto id = codec::decode_u32_value(*v);
  if (!id) corrupt("name", key);
  return campaign(*id);
}

std::optional<Campaign> RocksStore::campaign(CampaignId id) {
  if (!committed()->contains(id)) return std::nullopt;
  auto key = codec::campaign_key(id);
  auto v = get(key);
  if (!v) return std::nullopt;
  Campaign c;
  bool is_committed = false;
  if (!codec::decode_campaign(*v, c, is_committed)) corrupt("campaign", key);
  if (!is_committed) return std::nullopt;
  return c;
}

std::vector<Campaign> RocksStore::campaigns() {
  std::vector<Campaign> out;
  const std::string lower(1, codec::kCampaignPrefix);
  const std::string upper = prefix_end(lower);
  rocksdb::Slice upper_slice(upper);
  rocksdb::ReadOptions ro;
  ro.iterate_upper_bound = &upper_slice;
  auto it = iterator(ro);
  for (it->Seek(lower); it->Valid(); it->Next()) {
    Campaign c;
    bool is_committed = false;
    if (!codec::decode_campaign(view(it->value()), c, is_committed)) corrupt("campaign", view(it->key()));
    if (is_committed) out.push_back(std::move(c));
  }
  check(it->status(), "read failed");
  return out;
}

// --- RocksStore: recipients -------------------------------------------------------

std::optional<Recipient> RocksStore::recipient(RecipientKey key) {
  if (!committed()->contains(key.campaign)) return std::nullopt;
  Snapshot snapshot(*db_, read_only_);
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot.get();
  auto r = std::move(load_recipients(ro, std::span(&key, 1))[0]);
  if (r) r->status.event = latest_event(ro, key);
  return r;
}

std::optional<Event> RocksStore::latest_event(const rocksdb::ReadOptions& options, RecipientKey key) {
  const auto k = codec::recipient_key(codec::kLatestEventPrefix, key);
  auto v = get(k, options);
  if (!v) return std::nullopt;
  std::uint32_t logged = 0;
  Event e;
  if (!codec::decode_latest_event(*v, logged, e)) corrupt("latest event", k);
  return e;
}

void RocksStore::for_each_recipient(CampaignId id, const std::function<bool(const Recipient&)>& fn) {
  if (!committed()->contains(id)) return;
  // r and t records of a campaign have the same key suffixes in the same order:
  // walk both with one snapshot, in lockstep.
  Snapshot snapshot(*db_, read_only_);
  const auto r_lower = codec::campaign_prefix(codec::kRecipientPrefix, id);
  const auto r_upper = codec::campaign_prefix_end(codec::kRecipientPrefix, id);
  const auto t_lower = codec::campaign_prefix(codec::kStatusPrefix, id);
  const auto t_upper = codec::campaign_prefix_end(codec::kStatusPrefix, id);
  // Latest events are sparse (few recipients have one): a third iterator in step.
  const auto l_lower = codec::campaign_prefix(codec::kLatestEventPrefix, id);
  const auto l_upper = codec::campaign_prefix_end(codec::kLatestEventPrefix, id);
  rocksdb::Slice r_bound(r_upper), t_bound(t_upper), l_bound(l_upper);
  rocksdb::ReadOptions rro, tro, lro;
  rro.snapshot = tro.snapshot = lro.snapshot = snapshot.get();
  rro.fill_cache = tro.fill_cache = lro.fill_cache = false;
  rro.iterate_upper_bound = &r_bound;
  tro.iterate_upper_bound = &t_bound;
  lro.iterate_upper_bound = &l_bound;
  auto rit = iterator(rro);
  auto tit = iterator(tro);
  auto lit = iterator(lro);
  tit->Seek(t_lower);
  lit->Seek(l_lower);
  std::uint32_t logged_events = 0;
  Recipient r;
  codec::StoredStatus stored;
  for (rit->Seek(r_lower); rit->Valid(); rit->Next()) {
    auto key = codec::parse_recipient_key(view(rit->key()));
    if (!key || !codec::decode_recipient_data(view(rit->value()), r.address, r.fields))
      corrupt("recipient", view(rit->key()));
    if (!tit->Valid() || view(tit->key()).substr(1) != view(rit->key()).substr(1))
      corrupt("status (missing)", view(rit->key()));
    if (!codec::decode_status(view(tit->value()), stored)) corrupt("status", view(tit->key()));
    r.key = *key;
    r.status = std::move(stored.status);
    const auto suffix = view(rit->key()).substr(1);
    while (lit->Valid() && view(lit->key()).substr(1) < suffix) lit->Next();
    if (lit->Valid() && view(lit->key()).substr(1) == suffix) {
      Event e;
      if (!codec::decode_latest_event(view(lit->value()), logged_events, e)) corrupt("latest event", view(lit->key()));
      r.status.event = std::move(e);
    }
    if (!fn(r)) return;
    tit->Next();
  }
  check(rit->status(), "read failed");
  check(tit->status(), "read failed");
  check(lit->status(), "read failed");
}

template <typename Record>
std::vector<Record> RocksStore::read_log(char prefix, RecipientKey key, const char* what,
                                         bool (*decode)(std::string_view, Record&)) {
  std::vector<Record> out;
  const auto lower = codec::recipient_key(prefix, key);
  const auto upper = prefix_end(lower);
  rocksdb::Slice upper_slice(upper);
  rocksdb::ReadOptions ro;
  ro.iterate_upper_bound = &upper_slice;
  auto it = iterator(ro);
  for (it->Seek(lower); it->Valid(); it->Next()) {
    Record r;
    if (!decode(view(it->value()), r)) corrupt(what, view(it->key()));
    out.push_back(std::move(r));
  }
  check(it->status(), "read failed");
  return out;
}

std::vector<Attempt> RocksStore::attempts(RecipientKey key) {
  return read_log<Attempt>(codec::kAttemptPrefix, key, "attempt", &codec::decode_attempt);
}

Counts RocksStore::counts(CampaignId id) {
  // Cost: one scan of the campaign's status records (~10-20 bytes each, so a
  // million recipients read ~20 MB, a fraction of a second). Fine for status and
  // reports; a hot path would keep counters updated by record() instead.
  Counts c;
  if (!committed()->contains(id)) return c;
  const auto lower = codec::campaign_prefix(codec::kStatusPrefix, id);
  const auto upper = codec::campaign_prefix_end(codec::kStatusPrefix, id);
  rocksdb::Slice upper_slice(upper);
  rocksdb::ReadOptions ro;
  ro.iterate_upper_bound = &upper_slice;
  ro.fill_cache = false;
  auto it = iterator(ro);
  for (it->Seek(lower); it->Valid(); it->Next()) {
    auto state = codec::peek_state(view(it->value()));
    if (!state) corrupt("status", view(it->key()));
    switch (*state) {
      case State::queued: ++c.queued; break;
      case State::delivered: ++c.delivered; break;
      case State::deferred: ++c.deferred; break;
      case State::bounced: ++c.bounced; break;
      case State::expired: ++c.expired; break;
      case State::suppressed: ++c.suppressed; break;
      case State::cancelled: ++c.cancelled; break;
    }
  }
  check(it->status(), "read failed");
  it.reset();

  const auto l_lower = codec::campaign_prefix(codec::kLatestEventPrefix, id);
  const auto l_upper = codec::campaign_prefix_end(codec::kLatestEventPrefix, id);
  rocksdb::Slice l_bound(l_upper);
  ro.iterate_upper_bound = &l_bound;
  auto lit = iterator(ro);
  std::uint32_t logged = 0;
  Event e;
  for (lit->Seek(l_lower); lit->Valid(); lit->Next()) {
    if (!codec::decode_latest_event(view(lit->value()), logged, e)) corrupt("latest event", view(lit->key()));
    switch (e.kind) {
      case EventKind::late_bounce: ++c.late_bounce; break;
      case EventKind::complaint: ++c.complaint; break;
      case EventKind::unsubscribe: ++c.unsubscribe; break;
      case EventKind::autoreply: ++c.autoreply; break;
      case EventKind::delay: ++c.delay; break;
    }
  }
  check(lit->status(), "read failed");
  return c;
}

// --- RocksStore: schedule -----------------------------------------------------------

namespace {
// The first schedule key after every entry of (due, campaign): one Seek skips an
// uncommitted campaign's entries at that due time, however many there are.
std::optional<std::string> past_campaign_bucket(const codec::ScheduleEntry& e) {
  if (e.key.campaign != std::numeric_limits<CampaignId>::max())
    return codec::schedule_key(e.due_ms, {e.key.campaign + 1, 0});
  if (e.due_ms == std::numeric_limits<std::int64_t>::max()) return std::nullopt;
  return codec::schedule_bound(e.due_ms + 1);
}
}  // namespace

std::vector<Recipient> RocksStore::due(std::int64_t now_ms, std::size_t limit, ScheduleCursor& cursor,
                                       std::span<const CampaignId> held) {
  std::vector<Recipient> out;
  if (limit == 0) return out;
  // Start at the later of the cursor and the low-water mark. A scan from the mark
  // itself (no cursor ahead of it) sees the true head and may raise the mark to the
  // first live key it meets. That is safe because of the order here: tracking starts
  // before the snapshot is taken, and inserts note their keys only after their write
  // completes. So a key noted before tracking began is in the snapshot, and a key
  // the snapshot misses is noted in tracked_min_.
  std::string start;
  bool tracking = false;
  {
    std::lock_guard lock(mutex_);
    if (cursor.after < low_water_) {
      start = low_water_;
      if (!tracking_) {
        tracking_ = tracking = true;
        tracked_min_ = kScheduleEnd;
      }
    } else {
      start = cursor.after;
    }
  }
  struct Untrack {
    RocksStore& store;
    bool active;
    ~Untrack() {
      if (!active) return;
      std::lock_guard lock(store.mutex_);
      store.tracking_ = false;
    }
  } untrack{*this, tracking};

  // Then the snapshot, then the committed set. A campaign committed in between is
  // in both; committed campaigns never leave the set; an aborted one was never in
  // it. So an entry is returned only if its campaign is committed.
  Snapshot snapshot(*db_, read_only_);
  auto committed_now = committed();
  std::string first_seen;

  const std::string upper = now_ms == std::numeric_limits<std::int64_t>::max()
                                ? kScheduleEnd
                                : codec::schedule_bound(now_ms + 1);
  rocksdb::Slice upper_slice(upper);
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot.get();
  ro.iterate_upper_bound = &upper_slice;
  auto it = iterator(ro);
  it->Seek(start);  // >= low_water_, which is always a schedule key or a bound
  if (it->Valid() && !cursor.after.empty() && view(it->key()) == cursor.after) it->Next();

  std::vector<codec::ScheduleEntry> entries;
  std::string last_key;
  while (it->Valid() && entries.size() < limit) {
    auto key = view(it->key());
    auto e = codec::parse_schedule_key(key);
    if (!e) corrupt("schedule", key);
    if (first_seen.empty()) first_seen.assign(key);
    if (!committed_now->contains(e->key.campaign) ||
        std::binary_search(held.begin(), held.end(), e->key.campaign)) {
      auto next = past_campaign_bucket(*e);
      if (!next) break;
      it->Seek(*next);
      continue;
    }
    entries.push_back(*e);
    last_key.assign(key);
    it->Next();
  }
  check(it->status(), "read failed");
  it.reset();

  if (tracking) {
    std::lock_guard lock(mutex_);
    // Every key in [start, first_seen) was dead in the snapshot; with nothing seen,
    // every key below the upper bound was.
    std::string raised = first_seen.empty() ? upper : first_seen;
    if (tracked_min_ < raised) raised = tracked_min_;
    if (raised > low_water_) low_water_ = std::move(raised);
  }

  std::vector<RecipientKey> keys;
  keys.reserve(entries.size());
  for (const auto& e : entries) keys.push_back(e.key);
  auto loaded = load_recipients(ro, keys);
  out.reserve(entries.size());
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (!loaded[i]) {
      // A schedule entry without its recipient breaks the store's invariant; report
      // it rather than stop delivery for everyone.
      log::get("queue")->error("schedule entry without recipient campaign={} recipient={}", keys[i].campaign,
                               keys[i].recipient);
      continue;
    }
    loaded[i]->status.next_attempt_ms = entries[i].due_ms;  // the entry record() must remove
    out.push_back(std::move(*loaded[i]));
  }
  if (!last_key.empty()) cursor.after = std::move(last_key);
  return out;
}

std::optional<std::int64_t> RocksStore::next_due_ms(std::optional<CampaignId> campaign) {
  Snapshot snapshot(*db_, read_only_);
  auto committed_now = committed();
  if (campaign && !committed_now->contains(*campaign)) return std::nullopt;
  std::string start;
  {
    std::lock_guard lock(mutex_);
    start = low_water_;
  }
  rocksdb::Slice upper_slice(kScheduleEnd);
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot.get();
  ro.iterate_upper_bound = &upper_slice;
  auto it = iterator(ro);
  it->Seek(start);
  // For one campaign this is a skip scan: within a due time entries are ordered by
  // campaign, so each Seek jumps to that campaign's bucket or past the due time.
  // Cheap when due times cluster (intake gives a campaign one or few), at worst one
  // Seek per distinct due time ahead of the campaign's first entry.
  while (it->Valid()) {
    auto e = codec::parse_schedule_key(view(it->key()));
    if (!e) corrupt("schedule", view(it->key()));
    if (campaign ? e->key.campaign == *campaign : committed_now->contains(e->key.campaign)) return e->due_ms;
    std::optional<std::string> next;
    if (campaign && e->key.campaign < *campaign)
      next = codec::schedule_key(e->due_ms, {*campaign, 0});
    else if (campaign)
      next = e->due_ms == std::numeric_limits<std::int64_t>::max()
                 ? std::nullopt
                 : std::optional(codec::schedule_bound(e->due_ms + 1));
    else
      next = past_campaign_bucket(*e);
    if (!next) break;
    it->Seek(*next);
  }
  check(it->status(), "read failed");
  return std::nullopt;
}

void RocksStore::record(std::span<const Outcome> outcomes) {
  if (outcomes.empty()) return;
  auto committed_now = committed();
  // The stored status is authoritative for where the current schedule entry is and
  // how many attempts are logged; read them all at once.
  std::vector<std::string> status_keys;
  status_keys.reserve(outcomes.size());
  for (const auto& o : outcomes) status_keys.push_back(codec::recipient_key(codec::kStatusPrefix, o.key));
  std::vector<rocksdb::Slice> slices(status_keys.begin(), status_keys.end());
  std::vector<rocksdb::PinnableSlice> values(outcomes.size());
  std::vector<rocksdb::Status> statuses(outcomes.size());
  db_->MultiGet(rocksdb::ReadOptions(), db_->DefaultColumnFamily(), outcomes.size(), slices.data(), values.data(),
                statuses.data());

  // Later outcomes for the same recipient in this call see the earlier ones.
  std::map<RecipientKey, codec::StoredStatus> updated;
  // Operations grouped by record type and applied group by group (order within a
  // group kept, which is all that matters for two outcomes of one recipient): the
  // memtable inserts then stay near their previous position, as in intake.
  struct ScheduleOp {
    std::string key;
    bool put;
  };
  std::vector<ScheduleOp> schedule_ops;
  std::vector<std::pair<std::string, std::string>> attempt_puts;
  std::vector<std::pair<std::size_t, std::string>> status_puts;  // index into status_keys
  std::vector<const AddressUpdate*> address_updates;
  std::string min_schedule;
  for (std::size_t i = 0; i < outcomes.size(); ++i) {
    const auto& o = outcomes[i];
    // Unknown recipients and uncommitted campaigns: nothing to update, and writing
    // a status would create a recipient that does not exist.
    if (!committed_now->contains(o.key.campaign)) continue;
    codec::StoredStatus stored;
    if (auto u = updated.find(o.key); u != updated.end()) {
      stored = u->second;
    } else {
      if (statuses[i].IsNotFound()) continue;
      check(statuses[i], "read failed");
      if (!codec::decode_status(view(values[i]), stored)) corrupt("status", status_keys[i]);
    }
    if (!is_final(stored.status.state)) {
      schedule_ops.push_back({codec::schedule_key(stored.status.next_attempt_ms, o.key), false});
      // previous_due_ms is the caller's view of the same entry; if it differs (it
      // should not), remove that one too so no stray entry survives.
      if (o.previous_due_ms != stored.status.next_attempt_ms)
        schedule_ops.push_back({codec::schedule_key(o.previous_due_ms, o.key), false});
    }
    if (!is_final(o.status.state)) {
      auto& op = schedule_ops.emplace_back(ScheduleOp{codec::schedule_key(o.status.next_attempt_ms, o.key), true});
      if (min_schedule.empty() || op.key < min_schedule) min_schedule = op.key;
    }
    codec::StoredStatus next{o.status, stored.logged_attempts};
    if (o.attempt) {
      std::string value;
      codec::encode_attempt(value, *o.attempt);
      attempt_puts.emplace_back(codec::attempt_key(o.key, next.logged_attempts), std::move(value));
      ++next.logged_attempts;
    }
    std::string value;
    codec::encode_status(value, next.status, next.logged_attempts);
    status_puts.emplace_back(i, std::move(value));
    updated[o.key] = std::move(next);
    if (o.address_update && !o.address_update->address.empty()) address_updates.push_back(&*o.address_update);
  }
  rocksdb::WriteBatch batch;
  for (const auto& op : schedule_ops)
    check(op.put ? batch.Put(op.key, rocksdb::Slice()) : batch.Delete(op.key), "record failed");
  for (const auto& [k, v] : attempt_puts) check(batch.Put(k, v), "record failed");
  for (const auto& [i, v] : status_puts) check(batch.Put(status_keys[i], v), "record failed");
  std::unique_lock<std::mutex> address_lock;
  if (!address_updates.empty()) {
    address_lock = std::unique_lock(event_mutex_);
    stage_address_updates(address_updates, batch);
  }
  if (batch.Count() == 0) return;
  // One synced write per call; concurrent callers share fsyncs through RocksDB's
  // write group (the leader syncs the WAL once for the whole group).
  write(batch, true, "write failed");
  note_schedule_insert(min_schedule);
}

// --- RocksStore: events and address updates ------------------------------------------

EventResult RocksStore::add_event(RecipientKey key, const Event& event, const std::optional<AddressUpdate>& update) {
  EventResult result;
  if (!committed()->contains(key.campaign)) return result;
  std::lock_guard lock(event_mutex_);
  if (!get(codec::recipient_key(codec::kStatusPrefix, key))) return result;
  const auto latest_key = codec::recipient_key(codec::kLatestEventPrefix, key);
  std::uint32_t logged = 0;
  if (auto v = get(latest_key)) {
    Event previous;
    if (!codec::decode_latest_event(*v, logged, previous)) corrupt("latest event", latest_key);
  }
  rocksdb::WriteBatch batch;
  std::string value;
  codec::encode_event(value, event);
  check(batch.Put(codec::event_key(key, logged), value), "write failed");
  value.clear();
  codec::encode_latest_event(value, logged + 1, event);
  check(batch.Put(latest_key, value), "write failed");
  if (update && !update->address.empty()) {
    const AddressUpdate* one = &*update;
    result.suppressed = stage_address_updates(std::span(&one, 1), batch) > 0;
  }
  // Synced: the bounce listener says 250 only after this returns.
  write(batch, true, "write failed");
  result.applied = true;
  return result;
}

std::vector<Event> RocksStore::events(RecipientKey key) {
  return read_log<Event>(codec::kEventPrefix, key, "event", &codec::decode_event);
}

std::uint32_t RocksStore::soft_bounces(std::string_view address) {
  auto key = codec::soft_bounce_key(address);
  auto v = get(key);
  if (!v) return 0;
  auto n = codec::decode_u32_value(*v);
  if (!n) corrupt("soft bounce count", key);
  return *n;
}

std::size_t RocksStore::stage_address_updates(std::span<const AddressUpdate* const> updates,
                                              rocksdb::WriteBatch& batch) {
  // The stored counts and list entries, read at once; later updates of the same
  // address in this batch see the earlier ones through `known`. A `delivered` update
  // (the common one) only clears the soft-bounce count, so only the others read the
  // suppression list.
  const auto n = updates.size();
  constexpr std::size_t kNoRead = std::numeric_limits<std::size_t>::max();
  std::vector<std::string> keys;  // soft-bounce keys (one per update), then suppression keys
  std::vector<std::size_t> suppression_index(n, kNoRead);  // into keys, for updates that may suppress
  keys.reserve(2 * n);
  for (const auto* u : updates) keys.push_back(codec::soft_bounce_key(u->address));
  for (std::size_t i = 0; i < n; ++i) {
    if (updates[i]->kind == AddressUpdate::Kind::delivered) continue;
    suppression_index[i] = keys.size();
    keys.push_back(codec::suppression_key(updates[i]->address));
  }
  const auto reads = keys.size();
  std::vector<rocksdb::Slice> slices(keys.begin(), keys.end());
  std::vector<rocksdb::PinnableSlice> values(reads);
  std::vector<rocksdb::Status> statuses(reads);
  db_->MultiGet(rocksdb::ReadOptions(), db_->DefaultColumnFamily(), reads, slices.data(), values.data(),
                statuses.data());
  struct Known {
    std::uint32_t soft = 0;
    bool suppression_read = false;
    bool suppressed = false;
  };
  std::map<std::string, Known> known;  // by soft-bounce key (the lower-cased address)
  std::size_t newly_suppressed = 0;
  std::string value;
  for (std::size_t i = 0; i < n; ++i) {
    const AddressUpdate& u = *updates[i];
    auto [it, inserted] = known.try_emplace(keys[i]);
    Known& k = it->second;
    if (inserted && !statuses[i].IsNotFound()) {
      check(statuses[i], "read failed");
      auto count = codec::decode_u32_value(view(values[i]));
      if (!count) corrupt("soft bounce count", keys[i]);
      k.soft = *count;
    }
    const std::size_t s = suppression_index[i];
    // The first update of the address that may suppress takes the stored entry;
    // later ones see what this batch has staged since.
    if (s != kNoRead && !k.suppression_read) {
      k.suppression_read = true;
      if (!statuses[s].IsNotFound()) {
        check(statuses[s], "read failed");
        k.suppressed = true;
      }
    }
    auto add_suppression = [&](std::string reason) {
      if (k.suppressed) return;  // the first reason stays: it says why the address went
      value.clear();
      codec::encode_suppression(value, Suppression{u.address, std::move(reason), u.time_ms});
      check(batch.Put(keys[s], value), "write failed");
      k.suppressed = true;
      ++newly_suppressed;
    };
    switch (u.kind) {
      case AddressUpdate::Kind::delivered:
        if (k.soft == 0) break;  // the common case writes nothing
        check(batch.Delete(keys[i]), "write failed");
        k.soft = 0;
        break;
      case AddressUpdate::Kind::soft_bounce:
        ++k.soft;
        value.clear();
        codec::encode_u32_value(value, k.soft);
        check(batch.Put(keys[i], value), "write failed");
        if (u.soft_limit > 0 && k.soft >= u.soft_limit)
          add_suppression("soft-bounce " + u.reason + " x" + std::to_string(k.soft));
        break;
      case AddressUpdate::Kind::suppress:
        add_suppression(u.reason);
        break;
    }
  }
  return newly_suppressed;
}

// --- RocksStore: suppression ---------------------------------------------------------

void RocksStore::suppress(const Suppression& entry) {
  std::string value;
  codec::encode_suppression(value, entry);
  rocksdb::WriteBatch batch;
  check(batch.Put(codec::suppression_key(entry.address), value), "write failed");
  // Synced: a complaint or unsubscribe must not be forgotten by a crash.
  write(batch, true, "write failed");
}

void RocksStore::suppress_all(std::span<const Suppression> entries) {
  rocksdb::WriteBatch batch;
  std::string value;
  for (const auto& entry : entries) {
    value.clear();
    codec::encode_suppression(value, entry);
    check(batch.Put(codec::suppression_key(entry.address), value), "write failed");
  }
  if (batch.Count() == 0) return;
  write(batch, true, "write failed");
}

std::optional<Suppression> RocksStore::suppression(std::string_view address) {
  auto key = codec::suppression_key(address);
  auto v = get(key);
  if (!v) return std::nullopt;
  Suppression s;
  if (!codec::decode_suppression(key, *v, s)) corrupt("suppression", key);
  return s;
}

void RocksStore::for_each_suppression(const std::function<bool(const Suppression&)>& fn) {
  const std::string lower(1, codec::kSuppressionPrefix);
  const std::string upper = prefix_end(lower);
  rocksdb::Slice upper_slice(upper);
  rocksdb::ReadOptions ro;
  ro.iterate_upper_bound = &upper_slice;
  ro.fill_cache = false;
  auto it = iterator(ro);
  Suppression s;
  for (it->Seek(lower); it->Valid(); it->Next()) {
    if (!codec::decode_suppression(view(it->key()), view(it->value()), s)) corrupt("suppression", view(it->key()));
    if (!fn(s)) return;
  }
  check(it->status(), "read failed");
}

bool RocksStore::unsuppress(std::string_view address) {
  auto key = codec::suppression_key(address);
  if (!get(key)) return false;
  rocksdb::WriteBatch batch;
  check(batch.Delete(key), "write failed");
  write(batch, true, "write failed");
  return true;
}

std::optional<std::string> RocksStore::control(std::string_view name) {
  return get(codec::control_key(name));
}

void RocksStore::put_control(std::string_view name, std::string_view value) {
  rocksdb::WriteBatch batch;
  check(batch.Put(codec::control_key(name), rocksdb::Slice(value.data(), value.size())), "write failed");
  write(batch, true, "write failed");
}

void RocksStore::erase_control(std::string_view name) {
  rocksdb::WriteBatch batch;
  check(batch.Delete(codec::control_key(name)), "write failed");
  write(batch, true, "write failed");
}

void RocksStore::for_each_control(std::string_view prefix,
                                  const std::function<bool(std::string_view, std::string_view)>& fn) {
  const auto lower = codec::control_key(prefix);
  const auto upper = prefix_end(lower);
  rocksdb::Slice upper_slice(upper);
  rocksdb::ReadOptions ro;
  ro.iterate_upper_bound = &upper_slice;
  auto it = iterator(ro);
  for (it->Seek(lower); it->Valid(); it->Next()) {
    auto key = view(it->key());
    if (!fn(key.substr(1), view(it->value()))) break;
  }
  check(it->status(), "read failed");
}

std::uint64_t RocksStore::disk_bytes() {
  std::uint64_t sst = 0;
  if (!db_->GetIntProperty(rocksdb::DB::Properties::kTotalSstFilesSize, &sst))
    throw StoreError("queue: cannot read property " + rocksdb::DB::Properties::kTotalSstFilesSize);
  rocksdb::VectorLogPtr wals;
  check(db_->GetSortedWalFiles(wals), "cannot list WAL files");
  std::uint64_t wal = 0;
  for (const auto& f : wals) wal += f->SizeFileBytes();
  return sst + wal;
}

}  // namespace

std::unique_ptr<Store> open_rocksdb_store(const std::string& path, Access access) {
  return std::make_unique<RocksStore>(path, access);
}

}  // namespace kurier::queue
