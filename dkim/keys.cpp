// DKIM keys: loading and checking PEM private keys, keygen, public key records.
// Runs at campaign submission and in the CLI, on the caller's thread.
// Fails with KeyError naming the file and the problem; never prompts for a password.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <system_error>
#include <utility>
#include <vector>

#include "common/text.h"
#include "dkim/detail.h"

namespace kurier::dkim {

namespace {

// A PEM private key is a few KiB at most (RSA 8192: ~6.5 KiB); anything much larger is
// not a key, and reading it whole would only waste memory.
constexpr std::uintmax_t kMaxKeyFileSize = 64 * 1024;
// One character-string in a DNS TXT record holds at most 255 bytes (RFC 1035 §3.3).
constexpr std::size_t kTxtStringMax = 255;

struct BioFree {
  void operator()(BIO* bio) const noexcept { BIO_free(bio); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;

// Refuses to decrypt: a DKIM key is used unattended, and OpenSSL would otherwise ask
// on the terminal.
int no_password(char*, int, int, void*) { return -1; }

std::string read_key_file(const std::filesystem::path& file) {
  std::error_code ec;
  auto status = std::filesystem::status(file, ec);
  if (ec || !std::filesystem::exists(status)) throw KeyError(file, "file does not exist");
  if (!std::filesystem::is_regular_file(status)) throw KeyError(file, "not a regular file");
  auto size = std::filesystem::file_size(file, ec);
  if (ec) throw KeyError(file, "cannot read: " + ec.message());
  if (size > kMaxKeyFileSize) throw KeyError(file, "file of " + std::to_string(size) + " bytes is too large for a key");
  std::ifstream in(file, std::ios::binary);
  if (!in) throw KeyError(file, std::string("cannot read: ") + std::strerror(errno));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw KeyError(file, std::string("cannot read: ") + std::strerror(errno));
  return text;
}

}  // namespace

KeyError::KeyError(std::filesystem::path file, const std::string& problem)
    : std::runtime_error("DKIM key " + file.string() + ": " + problem), file_(std::move(file)) {}

namespace detail {

std::string base64(const unsigned char* data, std::size_t size) {
  std::string out(4 * ((size + 2) / 3), '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(size));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

void check_dns_name(std::string_view name, const char* what) {
  auto fail = [&](const char* why) {
    throw std::invalid_argument(std::string("DKIM ") + what + " '" + std::string(name) + "': " + why);
  };
  if (name.empty()) fail("empty");
  if (name.size() > 253) fail("longer than 253 bytes");
  std::size_t label = 0;
  for (char c : name) {
    if (c == '.') {
      if (label == 0) fail("empty label");
      label = 0;
      continue;
    }
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok) fail("only letters, digits, '-', '_' and '.' are allowed");
    if (++label > 63) fail("label longer than 63 bytes");
  }
  if (label == 0) fail("empty label");
}

bool aligned(std::string_view key_domain, std::string_view from_domain) {
  std::string key = text::lower_ascii(key_domain);
  std::string from = text::lower_ascii(from_domain);
  if (key == from) return true;
  return from.size() > key.size() && from.ends_with(key) && from[from.size() - key.size() - 1] == '.';
}

LoadedKey load_key(KeySpec spec) {
  const auto& file = spec.key_file;
  std::string text = read_key_file(file);
  // Name the common mistakes before OpenSSL reports them as a decoder failure.
  if (text.find("-----BEGIN") == std::string::npos) throw KeyError(file, "not a PEM file (no -----BEGIN line)");
  const bool has_private = text.find("PRIVATE KEY-----") != std::string::npos;
  if (!has_private && text.find("-----BEGIN CERTIFICATE-----") != std::string::npos)
    throw KeyError(file, "is a certificate, not a private key");
  if (!has_private && text.find("PUBLIC KEY-----") != std::string::npos)
    throw KeyError(file, "is a public key; DKIM signing needs the private key");
  if (text.find("-----BEGIN ENCRYPTED PRIVATE KEY-----") != std::string::npos ||
      text.find("Proc-Type: 4,ENCRYPTED") != std::string::npos)
    throw KeyError(file, "is encrypted; DKIM keys are used unattended and must be stored unencrypted (mode 0600)");

  BioPtr bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
  if (!bio) throw KeyError(file, "out of memory");
  detail::PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, no_password, nullptr));
  OPENSSL_cleanse(text.data(), text.size());
  if (!key) throw KeyError(file, "not a readable PEM private key (" + detail::openssl_error() + ")");

  LoadedKey loaded;
  switch (EVP_PKEY_get_base_id(key.get())) {
    case EVP_PKEY_RSA: {
      int bits = EVP_PKEY_get_bits(key.get());
      if (bits < kMinRsaBits)
        throw KeyError(file, "RSA key has " + std::to_string(bits) + " bits; at least " + std::to_string(kMinRsaBits) +
                                 " are required (RFC 8301), 2048 recommended");
      loaded.algorithm = Algorithm::rsa_sha256;
      break;
    }
    case EVP_PKEY_ED25519:
      loaded.algorithm = Algorithm::ed25519_sha256;
      break;
    default:
      throw KeyError(file, std::string("unsupported key type ") + OBJ_nid2sn(EVP_PKEY_get_base_id(key.get())) +
                               "; DKIM signs with RSA or Ed25519 keys");
  }
  loaded.key = std::move(key);
  loaded.spec = std::move(spec);
  return loaded;
}

std::string openssl_error() {
  unsigned long code = ERR_peek_last_error();
  std::string text;
  if (code != 0) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof buf);
    text = buf;
  }
  ERR_clear_error();
  return text.empty() ? "unknown OpenSSL error" : text;
}

std::string public_record(EVP_PKEY* key, Algorithm algorithm, const std::filesystem::path& key_file) {
  if (algorithm == Algorithm::ed25519_sha256) {
    // RFC 8463 §4.2: the bare 32-byte public key, not a SubjectPublicKeyInfo.
    unsigned char raw[32];
    std::size_t size = sizeof raw;
    if (EVP_PKEY_get_raw_public_key(key, raw, &size) != 1)
      throw KeyError(key_file, "cannot extract the Ed25519 public key (" + openssl_error() + ")");
    return "v=DKIM1; k=ed25519; p=" + base64(raw, size);
  }
  unsigned char* der = nullptr;
  int size = i2d_PUBKEY(key, &der);
  if (size <= 0) throw KeyError(key_file, "cannot encode the RSA public key (" + openssl_error() + ")");
  std::string p = base64(der, static_cast<std::size_t>(size));
  OPENSSL_free(der);
  return "v=DKIM1; k=rsa; p=" + p;
}

}  // namespace detail

Algorithm key_algorithm(const std::filesystem::path& key_file) {
  return detail::load_key(KeySpec{"", "", key_file}).algorithm;
}

std::string public_record(const std::filesystem::path& key_file) {
  detail::LoadedKey loaded = detail::load_key(KeySpec{"", "", key_file});
  return detail::public_record(loaded.key.get(), loaded.algorithm, key_file);
}

std::string keygen(Algorithm algorithm, const std::string& domain, const std::string& selector,
                   const std::filesystem::path& key_out) {
  detail::check_dns_name(domain, "domain");
  detail::check_dns_name(selector, "selector");

  detail::PkeyPtr key(algorithm == Algorithm::rsa_sha256
                          ? EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<std::size_t>(kKeygenRsaBits))
                          : EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  if (!key) throw KeyError(key_out, "key generation failed (" + detail::openssl_error() + ")");

  BioPtr mem(BIO_new(BIO_s_mem()));
  if (!mem || PEM_write_bio_PrivateKey(mem.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1)
    throw KeyError(key_out, "cannot encode the key (" + detail::openssl_error() + ")");
  char* pem = nullptr;
  long pem_size = BIO_get_mem_data(mem.get(), &pem);

  // O_EXCL: an existing key may be published in DNS already; overwriting it would
  // break every message signed with it that is still in flight.
  int fd = ::open(key_out.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == EEXIST) throw KeyError(key_out, "already exists; refusing to overwrite a key");
    throw KeyError(key_out, std::string("cannot create: ") + std::strerror(errno));
  }
  auto fail = [&](const char* what) {
    int err = errno;
    ::close(fd);
    ::unlink(key_out.c_str());
    throw KeyError(key_out, std::string(what) + ": " + std::strerror(err));
  };
  // The umask can only remove bits from 0600, but a umask of 0 must not leave more.
  if (::fchmod(fd, 0600) != 0) fail("cannot set mode 0600");
  for (long done = 0; done < pem_size;) {
    ssize_t n = ::write(fd, pem + done, static_cast<std::size_t>(pem_size - done));
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("cannot write");
    }
    done += n;
  }
  if (::fsync(fd) != 0) fail("cannot sync");
  if (::close(fd) != 0) {
    int err = errno;
    ::unlink(key_out.c_str());
    throw KeyError(key_out, std::string("cannot close: ") + std::strerror(err));
  }

  return zone_record(domain, selector, detail::public_record(key.get(), algorithm, key_out));
}

std::string zone_record(const std::string& domain, const std::string& selector, std::string_view value) {
  std::string record = selector + "._domainkey." + domain + ". IN TXT (";
  for (std::size_t i = 0; i < value.size(); i += kTxtStringMax) {
    record += " \"";
    record += value.substr(i, kTxtStringMax);
    record += "\"";
  }
  record += " )";
  return record;
}

namespace {

// RFC 6376 §3.2 tag=value list, names as written, values with all whitespace removed
// (only base64 values matter here, and FWS may appear anywhere in them). False for a
// syntax error or a repeated tag (§3.2: "MUST be ignored" ... "MUST NOT" repeat).
bool parse_tags(std::string_view text, std::vector<std::pair<std::string, std::string>>& tags) {
  auto strip = [](std::string_view s) {
    std::string out;
    for (char c : s) {
      if (c != ' ' && c != '\t' && c != '\r' && c != '\n') out += c;
    }
    return out;
  };
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t end = text.find(';', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view spec = text.substr(pos, end - pos);
    pos = end + 1;
    if (strip(spec).empty()) continue;  // a trailing ';' or an empty spec
    std::size_t eq = spec.find('=');
    if (eq == std::string_view::npos) return false;
    std::string name = strip(spec.substr(0, eq));
    if (name.empty()) return false;
    for (const auto& [known, unused] : tags) {
      if (known == name) return false;
    }
    tags.emplace_back(std::move(name), strip(spec.substr(eq + 1)));
  }
  return true;
}

const std::string* find_tag(const std::vector<std::pair<std::string, std::string>>& tags, std::string_view name) {
  for (const auto& [tag, value] : tags) {
    if (tag == name) return &value;
  }
  return nullptr;
}

}  // namespace

std::string record_mismatch(std::string_view published, std::string_view expected) {
  std::vector<std::pair<std::string, std::string>> have, want;
  if (!parse_tags(expected, want)) throw std::invalid_argument("DKIM: malformed expected record");
  if (!parse_tags(published, have)) return "not a DKIM key record (malformed tag list)";
  if (const std::string* v = find_tag(have, "v"); v != nullptr && *v != "DKIM1")
    return "not a DKIM key record (v=" + *v + ")";
  const std::string* p = find_tag(have, "p");
  if (p == nullptr) return "no p= tag";
  if (p->empty()) return "p= is empty: the key is revoked";
  const std::string* k = find_tag(have, "k");
  const std::string published_type = k != nullptr ? *k : "rsa";
  const std::string* want_k = find_tag(want, "k");
  const std::string want_type = want_k != nullptr ? *want_k : "rsa";
  if (text::lower_ascii(published_type) != want_type) return "k=" + published_type + " is published, the key is k=" + want_type;
  const std::string* want_p = find_tag(want, "p");
  if (want_p == nullptr || *p != *want_p) return "p= is a different public key";
  return "";
}

}  // namespace kurier::dkim
