// Backend::opendkim: signs with libopendkim end to end (one DKIM_LIB per Signer, one
// DKIM handle per signature per message). Any thread; sign() calls are serialised.
// DKIM_STAT failures become KeyError (create) or SignError (sign) with libopendkim's text.
//
// The only file that includes <opendkim/dkim.h>: it is a C header that uses C99's
// _Bool, which C++ spells bool.
#include <sys/types.h>

#include <openssl/pem.h>

#include <cstdint>
#include <mutex>
#include <string>

#define _Bool bool
#include <opendkim/dkim.h>
#undef _Bool

#include "common/text.h"
#include "dkim/detail.h"

namespace kurier::dkim::detail {

namespace {

struct LibClose {
  void operator()(DKIM_LIB* lib) const noexcept { dkim_close(lib); }
};
struct HandleFree {
  void operator()(DKIM* dkim) const noexcept { dkim_free(dkim); }
};
using HandlePtr = std::unique_ptr<DKIM, HandleFree>;

// "dkim_eom: Syntax error (header line without ':')": the call, libopendkim's name for
// the status, and its detail for this handle when it has one.
std::string describe(const char* call, DKIM_STAT status, DKIM* dkim) {
  std::string text = std::string(call) + ": ";
  const char* result = dkim_getresultstr(status);
  text += result != nullptr ? result : "status " + std::to_string(status);
  const char* detail = dkim != nullptr ? dkim_geterror(dkim) : nullptr;
  if (detail != nullptr && *detail != '\0') text += std::string(" (") + detail + ")";
  return text;
}

// A secret in memory that is wiped when dropped.
struct SecretString {
  std::string text;
  SecretString() = default;
  SecretString(SecretString&&) = default;
  ~SecretString() { OPENSSL_cleanse(text.data(), text.size()); }
};

struct OpendkimKey {
  KeySpec spec;
  dkim_alg_t algorithm;
  SecretString pem;  // PKCS#8 PEM, NUL-terminated: dkim_sign() takes strlen() of it
};

class OpendkimSigner final : public Signer {
 public:
  explicit OpendkimSigner(std::vector<LoadedKey> keys) {
    lib_.reset(dkim_init(nullptr, nullptr));
    if (!lib_) throw std::runtime_error("DKIM: dkim_init failed");
    // The fixed list of signer.h; libopendkim signs those present.
    // kSignedHeaders holds string literals, so each data() is NUL-terminated.
    static const auto signed_headers = [] {
      std::array<const char*, detail::kSignedHeaders.size() + 1> names{};  // ends in nullptr
      for (std::size_t i = 0; i < detail::kSignedHeaders.size(); ++i) names[i] = detail::kSignedHeaders[i].data();
      return names;
    }();
    DKIM_STAT status = dkim_options(lib_.get(), DKIM_OP_SETOPT, DKIM_OPTS_SIGNHDRS,
                                    const_cast<char**>(signed_headers.data()),
                                    sizeof(char**));  // libopendkim checks len == sizeof its char** member
    if (status != DKIM_STAT_OK) throw std::runtime_error("DKIM: " + describe("dkim_options(SIGNHDRS)", status, nullptr));

    for (LoadedKey& key : keys) {
      OpendkimKey converted{std::move(key.spec),
                            key.algorithm == Algorithm::rsa_sha256 ? DKIM_SIGN_RSASHA256 : DKIM_SIGN_ED25519SHA256,
                            {}};
      // libopendkim reads PEM (its DER branch cannot work: it takes strlen() of the
      // key); PKCS#8 covers both key types, whatever form the file had.
      BIO* bio = BIO_new(BIO_s_mem());
      if (bio == nullptr || PEM_write_bio_PrivateKey(bio, key.key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
        BIO_free(bio);
        throw KeyError(converted.spec.key_file, "cannot convert the key to PEM for libopendkim");
      }
      char* data = nullptr;
      long size = BIO_get_mem_data(bio, &data);
      converted.pem.text.assign(data, static_cast<std::size_t>(size));
      OPENSSL_cleanse(data, static_cast<std::size_t>(size));
      BIO_free(bio);
      // Let libopendkim load it now, so that a key it cannot use is refused here.
      HandlePtr probe = open(converted);
      status = dkim_privkey_load(probe.get());
      if (status != DKIM_STAT_OK)
        throw KeyError(converted.spec.key_file, "libopendkim cannot use it: " + describe("dkim_privkey_load", status, probe.get()));
      keys_.push_back(std::move(converted));
    }
  }

  using Signer::sign;
  std::string sign(std::string_view wire_message, std::int64_t signing_time) const override {
    // libopendkim needs the stored form of the message, not the wire form.
    const std::string message = unstuff(wire_message);
    const ParsedMessage parsed = parse_message(message);
    bool has_from = false;
    for (const HeaderField& field : parsed.fields) {
      has_from = has_from || text::iequals(field.name, "from");
    }
    if (!has_from) throw SignError("DKIM: message has no From field");

    // FIXEDTIME is an option of the DKIM_LIB, shared by all handles: hence the lock.
    std::lock_guard lock(mutex_);
    auto when = static_cast<std::uint64_t>(signing_time);
    DKIM_STAT status = dkim_options(lib_.get(), DKIM_OP_SETOPT, DKIM_OPTS_FIXEDTIME, &when, sizeof when);
    if (status != DKIM_STAT_OK) throw SignError("DKIM: " + describe("dkim_options(FIXEDTIME)", status, nullptr));

    std::string out;
    for (const OpendkimKey& key : keys_) {
      HandlePtr dkim = open(key);
      // No folding inside tag values: the native backend folds only where the signed
      // text does not change, so both produce the same b= (tests compare them).
      dkim_set_margin(dkim.get(), 0);
      for (const HeaderField& field : parsed.fields) {
        std::string text(field.text);  // dkim_header takes a non-const pointer
        status = dkim_header(dkim.get(), reinterpret_cast<u_char*>(text.data()), text.size());
        if (status != DKIM_STAT_OK) throw SignError("DKIM: " + describe("dkim_header", status, dkim.get()));
      }
      status = dkim_eoh(dkim.get());
      if (status != DKIM_STAT_OK) throw SignError("DKIM: " + describe("dkim_eoh", status, dkim.get()));
      std::string body(parsed.body);
      status = dkim_body(dkim.get(), reinterpret_cast<u_char*>(body.data()), body.size());
      if (status != DKIM_STAT_OK) throw SignError("DKIM: " + describe("dkim_body", status, dkim.get()));
      status = dkim_eom(dkim.get(), nullptr);
      if (status != DKIM_STAT_OK) throw SignError("DKIM: " + describe("dkim_eom", status, dkim.get()));
      u_char* value = nullptr;
      size_t length = 0;
      static constexpr std::string_view kPrefix = "DKIM-Signature: ";
      status = dkim_getsighdr_d(dkim.get(), kPrefix.size(), &value, &length);
      if (status != DKIM_STAT_OK) throw SignError("DKIM: " + describe("dkim_getsighdr_d", status, dkim.get()));
      out += kPrefix;
      // libopendkim folds with bare LF (the milter convention); mail on the wire uses CRLF.
      for (size_t i = 0; i < length; ++i) {
        if (value[i] == '\n') out += '\r';
        out += static_cast<char>(value[i]);
      }
      out += "\r\n";
    }
    return out;
  }

 private:
  HandlePtr open(const OpendkimKey& key) const {
    DKIM_STAT status = DKIM_STAT_OK;
    HandlePtr dkim(dkim_sign(lib_.get(), reinterpret_cast<const unsigned char*>("kurier"), nullptr,
                             // dkim_sigkey_t is a non-const pointer; libopendkim copies the key.
                             reinterpret_cast<unsigned char*>(const_cast<char*>(key.pem.text.c_str())),
                             reinterpret_cast<const unsigned char*>(key.spec.selector.c_str()),
                             reinterpret_cast<const unsigned char*>(key.spec.domain.c_str()), DKIM_CANON_RELAXED,
                             DKIM_CANON_RELAXED, key.algorithm, -1, &status));
    if (!dkim) throw SignError("DKIM: " + describe("dkim_sign", status, nullptr));
    return dkim;
  }

  std::unique_ptr<DKIM_LIB, LibClose> lib_;
  std::vector<OpendkimKey> keys_;
  mutable std::mutex mutex_;
};

}  // namespace

std::unique_ptr<Signer> make_opendkim_signer(std::vector<LoadedKey> keys) {
  return std::make_unique<OpendkimSigner>(std::move(keys));
}

}  // namespace kurier::dkim::detail
