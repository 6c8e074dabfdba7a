// The inbound-message parser: GMime 3 splits the MIME structure (multipart/report,
// nested multiparts, base64/quoted-printable, charsets); this file reads the parts:
// RFC 3464 delivery-status fields, RFC 5965 feedback reports, RFC 3834 auto-reply
// markers, and the free text of non-standard NDRs. Any thread; never throws on bad
// input (garbage yields Kind::unknown).
#include <gmime/gmime.h>

#include <algorithm>
#include <array>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "bounce/bounce.h"
#include "bounce/fields.h"
#include "bounce/text.h"

namespace kurier::bounce {
namespace {

// Defends against hostile nesting (multipart bombs): real NDRs nest 3-4 levels.
constexpr int kMaxDepth = 12;
// Bounce text beyond this is the returned message or noise; scraping stops there.
constexpr std::size_t kMaxScrapeBytes = 256 * 1024;
// A recipient's diagnostic from a scraped NDR: a few lines, never a whole message.
constexpr std::size_t kMaxDiagnosticLines = 8;

void init_gmime() {
  static std::once_flag once;
  std::call_once(once, [] { g_mime_init(); });
}

template <typename T>
struct GObjectDeleter {
  void operator()(T* p) const {
    if (p != nullptr) g_object_unref(p);
  }
};
template <typename T>
using GPtr = std::unique_ptr<T, GObjectDeleter<T>>;

bool is_a(void* object, GType type) {
  return object != nullptr && g_type_check_instance_is_a(static_cast<GTypeInstance*>(object), type) != 0;
}

std::string take_gchar(char* s) {
  if (s == nullptr) return {};
  std::string out(s);
  g_free(s);
  return out;
}

std::string header(GMimeObject* object, const char* name) {
  const char* value = g_mime_object_get_header(object, name);
  return value != nullptr ? std::string(trim(value)) : std::string();
}

// Every mailbox address in an address-list header value ("A <a@b>, c@d").
void collect_addresses(const std::string& value, std::vector<std::string>& out) {
  if (value.empty()) return;
  InternetAddressList* list = internet_address_list_parse(nullptr, value.c_str());
  bool found = false;
  if (list != nullptr) {
    std::vector<InternetAddressList*> stack{list};
    while (!stack.empty()) {
      InternetAddressList* l = stack.back();
      stack.pop_back();
      const int n = internet_address_list_length(l);
      for (int i = 0; i < n; ++i) {
        InternetAddress* a = internet_address_list_get_address(l, i);
        if (is_a(a, internet_address_mailbox_get_type())) {
          const char* addr = internet_address_mailbox_get_addr(reinterpret_cast<InternetAddressMailbox*>(a));
          if (addr != nullptr && std::string_view(addr).find('@') != std::string_view::npos) {
            out.emplace_back(addr);
            found = true;
          }
        } else if (is_a(a, internet_address_group_get_type())) {
          stack.push_back(internet_address_group_get_members(reinterpret_cast<InternetAddressGroup*>(a)));
        }
      }
    }
    g_object_unref(list);
  }
  if (!found) {
    const std::string addr = extract_address(value);
    if (!addr.empty()) out.push_back(addr);
  }
}

std::string first_address(const std::string& value) {
  std::vector<std::string> out;
  collect_addresses(value, out);
  return out.empty() ? std::string() : out.front();
}

// The decoded bytes of a leaf part (transfer encoding undone; charset untouched).
std::string part_bytes(GMimeObject* object) {
  if (is_a(object, g_mime_message_part_get_type())) {
    GMimeMessage* message = g_mime_message_part_get_message(reinterpret_cast<GMimeMessagePart*>(object));
    if (message == nullptr) return {};
    return take_gchar(g_mime_object_to_string(reinterpret_cast<GMimeObject*>(message), nullptr));
  }
  if (!is_a(object, g_mime_part_get_type())) return {};
  GMimeDataWrapper* content = g_mime_part_get_content(reinterpret_cast<GMimePart*>(object));
  if (content == nullptr) return {};
  GPtr<GMimeStream> stream(g_mime_stream_mem_new());
  g_mime_data_wrapper_write_to_stream(content, stream.get());
  GByteArray* bytes = g_mime_stream_mem_get_byte_array(reinterpret_cast<GMimeStreamMem*>(stream.get()));
  if (bytes == nullptr) return {};
  return std::string(reinterpret_cast<const char*>(bytes->data), bytes->len);
}

// Text of a text/* part converted to UTF-8.
std::string part_text(GMimeObject* object) {
  if (is_a(object, g_mime_text_part_get_type()))
    return take_gchar(g_mime_text_part_get_text(reinterpret_cast<GMimeTextPart*>(object)));
  return part_bytes(object);
}

std::string strip_html(std::string_view html) {
  std::string out;
  out.reserve(html.size());
  for (std::size_t i = 0; i < html.size(); ++i) {
    if (html[i] == '<') {
      const std::size_t close = html.find('>', i);
      if (close == std::string_view::npos) break;
      const std::string tag = lower_ascii(html.substr(i + 1, std::min<std::size_t>(close - i - 1, 4)));
      if (tag.starts_with("br") || tag.starts_with("/p") || tag.starts_with("/div") || tag.starts_with("/tr") ||
          tag.starts_with("p") || tag.starts_with("li"))
        out += '\n';
      i = close;
    } else if (html[i] == '&') {
      static constexpr std::array<std::pair<std::string_view, char>, 6> kEntities = {
          {{"&lt;", '<'}, {"&gt;", '>'}, {"&amp;", '&'}, {"&nbsp;", ' '}, {"&quot;", '"'}, {"&#39;", '\''}}};
      bool matched = false;
      for (const auto& [entity, c] : kEntities) {
        if (html.substr(i).starts_with(entity)) {
          out += c;
          i += entity.size() - 1;
          matched = true;
          break;
        }
      }
      if (!matched) out += '&';
    } else {
      out += html[i];
    }
  }
  return out;
}

// Everything the MIME walk finds, before deciding what the message is.
struct Gathered {
  std::vector<FieldBlock> dsn;           // delivery-status blocks (first = per-message)
  std::vector<FieldBlock> feedback;      // feedback-report blocks
  std::vector<std::string> texts;        // readable text parts of the notice itself
  std::vector<Field> returned_headers;   // headers of the returned original message
  bool has_returned_message = false;
};

void add_returned_headers(Gathered& g, std::vector<Field> fields) {
  if (g.has_returned_message) return;  // the first returned message is the one we sent
  g.has_returned_message = true;
  g.returned_headers = std::move(fields);
}

void walk(GMimeObject* object, Gathered& g, int depth) {
  if (object == nullptr || depth > kMaxDepth) return;
  if (is_a(object, g_mime_multipart_get_type())) {
    auto* multipart = reinterpret_cast<GMimeMultipart*>(object);
    const int n = g_mime_multipart_get_count(multipart);
    for (int i = 0; i < n; ++i) walk(g_mime_multipart_get_part(multipart, i), g, depth + 1);
    if (n == 0) {
      // A boundary that matches nothing (broken or rewritten by a relay): GMime keeps
      // the whole body as prologue; read it as text rather than lose the notice.
      const char* prologue = g_mime_multipart_get_prologue(multipart);
      const char* epilogue = g_mime_multipart_get_epilogue(multipart);
      g.texts.push_back(std::string(prologue != nullptr ? prologue : "") + "\n" + (epilogue != nullptr ? epilogue : ""));
    }
    return;
  }
  GMimeContentType* type = g_mime_object_get_content_type(object);
  auto is = [type](const char* t, const char* s) {
    return type != nullptr && g_mime_content_type_is_type(type, t, s) != 0;
  };
  if (is("message", "delivery-status") || is("message", "global-delivery-status")) {
    for (auto& block : parse_field_blocks(part_bytes(object))) g.dsn.push_back(std::move(block));
    return;
  }
  if (is("message", "feedback-report")) {
    for (auto& block : parse_field_blocks(part_bytes(object))) g.feedback.push_back(std::move(block));
    return;
  }
  if (is("text", "rfc822-headers") || is("message", "rfc822-headers")) {
    auto blocks = parse_field_blocks(part_bytes(object));
    add_returned_headers(g, blocks.empty() ? std::vector<Field>{} : std::move(blocks.front()));
    return;
  }
  if (is_a(object, g_mime_message_part_get_type())) {
    GMimeMessage* message = g_mime_message_part_get_message(reinterpret_cast<GMimeMessagePart*>(object));
    if (message == nullptr) return;
    std::vector<Field> fields;
    GMimeHeaderList* list = g_mime_object_get_header_list(reinterpret_cast<GMimeObject*>(message));
    const int n = list != nullptr ? g_mime_header_list_get_count(list) : 0;
    for (int i = 0; i < n; ++i) {
      GMimeHeader* h = g_mime_header_list_get_header_at(list, i);
      const char* name = g_mime_header_get_name(h);
      const char* value = g_mime_header_get_value(h);
      if (name != nullptr && value != nullptr) fields.push_back({name, std::string(trim(value))});
    }
    add_returned_headers(g, std::move(fields));
    return;
  }
  if (is("text", "plain") || type == nullptr) {
    g.texts.push_back(part_text(object));
  } else if (is("text", "html")) {
    g.texts.push_back(strip_html(part_text(object)));
  } else if (is("message", "*") || is("text", "*")) {
    g.texts.push_back(part_text(object));
  }
}

// ---- decisions ----

std::string lower_field(const FieldBlock& block, std::string_view name) { return lower_ascii(field(block, name)); }

bool is_daemon_sender(std::string_view from) {
  const std::string f = lower_ascii(from);
  const std::string local = f.substr(0, f.find('@'));
  return local == "mailer-daemon" || local == "postmaster" || local == "mail-daemon" || local == "mailerdaemon" ||
         local.starts_with("mailer-daemon") || local == "bounce" || local == "bounces" ||
         local == "mdaemon";
}

bool subject_says_ndr(std::string_view subject) {
  static constexpr std::array<std::string_view, 30> kSubjects = {
      "undelivered mail",        "undeliverable",          "delivery status notification",
      "mail delivery failed",    "failure notice",         "returned mail",
      "delivery failure",        "mail delivery system",   "delivery notification",
      "non remis",               "unzustellbar",           "nicht zustellbar",
      "message not delivered",   "could not be delivered", "delivery has failed",
      "mail failed",             "undeliverable mail",     "returning message to sender",
      "delivery problem",        "mail system error",      "delivery status",
      "warning: could not send", "delayed mail",           "message delayed",
      "delivery delayed",        "no entregado",           "non recapitabile",
      "onbestelbaar",            "rejected:",              "postmaster notify"};
  const std::string s = lower_ascii(subject);
  return std::any_of(kSubjects.begin(), kSubjects.end(), [&](std::string_view k) { return s.find(k) != std::string::npos; });
}

bool subject_says_delay(std::string_view subject) {
  const std::string s = lower_ascii(subject);
  return s.find("delay") != std::string::npos || s.find("warning:") != std::string::npos ||
         s.find("still being retried") != std::string::npos || s.find("will retry") != std::string::npos ||
         s.find("verzögert") != std::string::npos || s.find("retard") != std::string::npos;
}

// RFC 3834 and the vendor headers that came before it; subject prefixes as a last resort.
bool is_autoreply(GMimeObject* top, std::string_view subject) {
  const std::string auto_submitted = lower_ascii(header(top, "Auto-Submitted"));
  if (auto_submitted.starts_with("auto-replied")) return true;
  if (!header(top, "X-Autoreply").empty() || !header(top, "X-Autorespond").empty() ||
      !header(top, "X-Autoresponder").empty() || !header(top, "X-Vacation").empty())
    return true;
  const std::string precedence = lower_ascii(header(top, "Precedence"));
  const std::string x_precedence = lower_ascii(header(top, "X-Precedence"));
  if (precedence == "auto_reply" || x_precedence == "auto_reply") return true;
  const std::string s = lower_ascii(subject);
  static constexpr std::array<std::string_view, 26> kPrefixes = {
      "out of office",           "out of the office",     "automatic reply",     "auto reply",
      "autoreply",               "auto-reply",            "auto response",       "autoresponse",
      "away from",               "away until",            "on vacation",         "vacation",
      "abwesenheitsnotiz",       "automatische antwort",  "abwesend",            "außer haus",
      "réponse automatique",     "reponse automatique",   "absence",             "respuesta automática",
      "respuesta automatica",    "risposta automatica",   "afwezig",             "automatisch antwoord",
      "frånvaro",                "autosvar"};
  const bool bulk = precedence == "bulk" || auto_submitted.starts_with("auto-generated");
  for (auto prefix : kPrefixes) {
    const std::size_t at = s.find(prefix);
    // At the start (possibly after "Re:"/"AW:"), or anywhere when the headers say automatic.
    if (at != std::string::npos && (at <= 4 || bulk)) return true;
  }
  return false;
}

bool looks_like_reply(GMimeObject* top, std::string_view subject) {
  const std::string s = lower_ascii(trim(subject));
  if (!header(top, "In-Reply-To").empty() || !header(top, "References").empty()) return true;
  for (std::string_view p : {"re:", "aw:", "sv:", "vs:", "antw:", "r:", "rif:", "res:", "wg:", "fw:", "fwd:"})
    if (s.starts_with(p)) return true;
  return false;
}

std::string strip_type_prefix(std::string_view value) {
  // "rfc822; a@b", "smtp; 550 ...", "dns; mx.example.com"
  const std::size_t semi = value.find(';');
  if (semi != std::string_view::npos && semi < 16 && value.substr(0, semi).find(' ') == std::string_view::npos)
    return std::string(trim(value.substr(semi + 1)));
  return std::string(trim(value));
}

// The paragraph of the human-readable text that mentions `address`: the diagnostic
// of DSNs whose per-recipient block carries none.
std::string paragraph_mentioning(const std::vector<std::string>& texts, std::string_view address) {
  if (address.empty()) return {};
  for (const auto& text : texts) {
    const std::string lowered = lower_ascii(text);
    const std::size_t at = lowered.find(lower_ascii(address));
    if (at == std::string::npos) continue;
    std::size_t begin = lowered.rfind("\n\n", at);
    begin = begin == std::string::npos ? 0 : begin + 2;
    std::size_t end = lowered.find("\n\n", at);
    if (end == std::string::npos) end = lowered.size();
    return std::string(trim(std::string_view(text).substr(begin, std::min<std::size_t>(end - begin, 2000))));
  }
  return {};
}

std::string joined_text(const Gathered& g) {
  std::string text;
  for (const auto& t : g.texts) {
    if (text.size() >= kMaxScrapeBytes) break;
    text += t;
    text += "\n\n";
  }
  return text;
}

// A mailbox verdict given only at the end of DATA (after RCPT TO was accepted) comes
// from a content filter, not from a missing mailbox: "filtered", never hard.
bool rejected_after_data(std::string_view text) {
  const std::string t = lower_ascii(text);
  if (t.find("end of data") != std::string::npos || t.find("in reply to data") != std::string::npos ||
      t.find("after data") != std::string::npos)
    return true;
  // SMTP transcripts: ">>> DATA" answered by "<<< 5xx".
  const std::size_t data = t.find(">>> data");
  if (data == std::string::npos) return false;
  const std::size_t reply = t.find("<<< ", data);
  return reply != std::string::npos && reply + 4 < t.size() && t[reply + 4] == '5' &&
         t.find(">>> ", data + 8) > reply;
}

void add_candidate(Message& m, std::string address) {
  if (address.empty() || address.find('@') == std::string::npos) return;
  for (const auto& c : m.verp_candidates)
    if (iequals(c, address)) return;
  m.verp_candidates.push_back(std::move(address));
}

// The message's human-readable text scraped as an NDR, only when a DSN recipient
// needs it (no Diagnostic-Code, or a "user unknown" to check): most DSNs never do.
class LazyScrapedNdr {
 public:
  explicit LazyScrapedNdr(const Gathered& g) : g_(g) {}
  const ScrapedNdr& get() {
    if (!value_) value_ = scrape_ndr(joined_text(g_), kMaxDiagnosticLines);
    return *value_;
  }

 private:
  const Gathered& g_;
  std::optional<ScrapedNdr> value_;
};

RecipientReport dsn_recipient(const FieldBlock& block, const Rules& rules, const std::vector<std::string>& texts,
                              LazyScrapedNdr& scraped) {
  RecipientReport r;
  r.recipient = strip_type_prefix(field(block, "Final-Recipient"));
  if (r.recipient.empty()) r.recipient = strip_type_prefix(field(block, "Original-Recipient"));
  r.recipient = extract_address(r.recipient).empty() ? r.recipient : extract_address(r.recipient);
  r.action = lower_ascii(trim(field(block, "Action")));
  if (const std::size_t sp = r.action.find_first_of(" (;"); sp != std::string::npos) r.action.resize(sp);
  std::string status(trim(field(block, "Status")));
  if (const std::size_t sp = status.find_first_of(" (\t"); sp != std::string::npos) status.resize(sp);
  r.status = is_enhanced_code(status) ? status : std::string();
  const std::string diagnostic(trim(field(block, "Diagnostic-Code")));
  r.reply = strip_type_prefix(diagnostic);
  r.remote_mta = strip_type_prefix(field(block, "Remote-MTA"));
  std::string evidence = diagnostic;
  if (r.reply.empty()) {
    // No Diagnostic-Code: the human-readable part usually says what happened.
    for (const auto& s : scraped.get().recipients)
      if (iequals(s.address, r.recipient)) evidence = s.diagnostic;
    if (evidence.empty()) evidence = paragraph_mentioning(texts, r.recipient);
  }
  r.verdict = rules.classify_status(r.status, evidence);
  if (r.verdict.reason == "userunknown") {
    std::string context = evidence;
    for (const auto& s : scraped.get().recipients)
      if (iequals(s.address, r.recipient)) context += " " + s.diagnostic;
    if (rejected_after_data(evidence) || rejected_after_data(context)) r.verdict = rules.verdict_for("filtered");
  }
  if (r.status.empty()) r.status = scan_reply(evidence).enhanced;
  return r;
}

// Kind of one DSN recipient when its Action is missing: from the status class.
std::string_view implied_action(const RecipientReport& r, bool delay_subject) {
  if (!r.action.empty()) return r.action;
  if (r.status.starts_with("2")) return "delivered";
  if (r.status.starts_with("4") && delay_subject) return "delayed";
  return "failed";
}

bool from_dsn(const Gathered& g, const Rules& rules, bool delay_subject, Message& m) {
  std::vector<RecipientReport> failed, delayed, delivered;
  LazyScrapedNdr scraped(g);
  for (std::size_t i = 0; i < g.dsn.size(); ++i) {
    const FieldBlock& block = g.dsn[i];
    if (field(block, "Final-Recipient").empty() && field(block, "Original-Recipient").empty()) continue;
    RecipientReport r = dsn_recipient(block, rules, g.texts, scraped);
    const std::string_view action = implied_action(r, delay_subject);
    if (action == "failed") {
      failed.push_back(std::move(r));
    } else if (action == "delayed") {
      delayed.push_back(std::move(r));
    } else {
      delivered.push_back(std::move(r));
    }
  }
  if (!failed.empty()) {
    m.kind = Kind::bounce;
    m.recipients = std::move(failed);
  } else if (!delayed.empty()) {
    m.kind = Kind::delay;
    m.recipients = std::move(delayed);
  } else if (!delivered.empty()) {
    m.kind = Kind::delivered;
    m.recipients = std::move(delivered);
  } else {
    return false;
  }
  return true;
}

void from_feedback(const Gathered& g, const Rules& rules, Message& m) {
  m.kind = Kind::feedback;
  for (const auto& block : g.feedback) {
    if (m.feedback_type.empty()) m.feedback_type = lower_field(block, "Feedback-Type");
    for (const auto& f : block) {
      if (iequals(f.name, "Original-Rcpt-To") || iequals(f.name, "Removal-Recipient")) {
        RecipientReport r;
        r.recipient = extract_address(f.value);
        if (r.recipient.empty()) continue;
        r.verdict = rules.verdict_for("feedback");
        m.recipients.push_back(std::move(r));
      }
      if (iequals(f.name, "Original-Mail-From")) add_candidate(m, extract_address(f.value));
    }
  }
  if (m.feedback_type.empty()) m.feedback_type = "abuse";
  if (m.recipients.empty()) {
    // Most feedback loops redact Original-Rcpt-To: the returned message's To names the complainer.
    RecipientReport r;
    r.recipient = first_address(field(g.returned_headers, "To"));
    r.verdict = rules.verdict_for("feedback");
    m.recipients.push_back(std::move(r));
  }
}

// Amazon SES notifications delivered by SNS e-mail: a JSON document in the body.
bool from_ses_json(const Gathered& g, const Rules& rules, Message& m) {
  for (const auto& text : g.texts) {
    if (text.find("notificationType") == std::string::npos && text.find("eventType") == std::string::npos) continue;
    const std::size_t open = text.find('{');
    const std::size_t close = text.rfind('}');
    if (open == std::string::npos || close == std::string::npos || close < open) continue;
    // Long lines may have been wrapped in transit; JSON needs none of the line breaks.
    std::string json_text;
    for (char c : std::string_view(text).substr(open, close - open + 1))
      if (c != '\n' && c != '\r') json_text += c;
    nlohmann::json doc = nlohmann::json::parse(json_text, nullptr, false);
    if (doc.is_discarded() || !doc.is_object()) continue;
    // SNS wraps the SES event as a JSON string in "Message".
    if (const auto inner = doc.find("Message"); inner != doc.end() && inner->is_string()) {
      nlohmann::json parsed = nlohmann::json::parse(inner->get<std::string>(), nullptr, false);
      if (parsed.is_discarded() || !parsed.is_object()) continue;
      doc = std::move(parsed);
    }
    std::string type = doc.value("notificationType", doc.value("eventType", ""));
    if (const auto mail = doc.find("mail"); mail != doc.end() && mail->is_object()) {
      if (mail->contains("source") && (*mail)["source"].is_string()) add_candidate(m, (*mail)["source"]);
      if (mail->contains("messageId") && (*mail)["messageId"].is_string())
        m.original_message_id = (*mail)["messageId"];
    }
    if (type == "Bounce" && doc.contains("bounce")) {
      const auto& bounce = doc["bounce"];
      m.kind = bounce.value("bounceType", "") == "Transient" ? Kind::delay : Kind::bounce;
      for (const auto& item : bounce.value("bouncedRecipients", nlohmann::json::array())) {
        if (!item.is_object()) continue;
        RecipientReport r;
        r.recipient = item.value("emailAddress", "");
        r.status = item.value("status", "");
        r.action = item.value("action", "failed");
        const std::string diagnostic = item.value("diagnosticCode", "");
        r.reply = strip_type_prefix(diagnostic);
        r.verdict = rules.classify_status(r.status, diagnostic);
        m.recipients.push_back(std::move(r));
      }
      return true;
    }
    if (type == "Complaint" && doc.contains("complaint")) {
      const auto& complaint = doc["complaint"];
      m.kind = Kind::feedback;
      m.feedback_type = complaint.value("complaintFeedbackType", "abuse");
      for (const auto& item : complaint.value("complainedRecipients", nlohmann::json::array())) {
        if (!item.is_object()) continue;
        RecipientReport r;
        r.recipient = item.value("emailAddress", "");
        r.verdict = rules.verdict_for("feedback");
        m.recipients.push_back(std::move(r));
      }
      return true;
    }
    if (type == "Delivery" && doc.contains("delivery")) {
      m.kind = Kind::delivered;
      const auto& delivery = doc["delivery"];
      const std::string reply = delivery.value("smtpResponse", "");
      for (const auto& item : delivery.value("recipients", nlohmann::json::array())) {
        if (!item.is_string()) continue;
        RecipientReport r;
        r.recipient = item;
        r.action = "delivered";
        r.reply = reply;
        r.status = scan_reply(reply).enhanced;
        r.verdict = rules.verdict_for("delivered");
        m.recipients.push_back(std::move(r));
      }
      return true;
    }
  }
  return false;
}

void from_ndr_text(Gathered& g, const Rules& rules, const std::string& notice_from, bool delay_subject,
                   Message& m) {
  const std::string text = joined_text(g);
  ScrapedNdr scraped = scrape_ndr(text, kMaxDiagnosticLines);
  if (!scraped.returned_headers.empty() && !g.has_returned_message) {
    // qmail and others append the original message inline, after a marker line.
    g.returned_headers = scraped.returned_headers;
  }
  const bool delay = delay_subject || scraped.delayed;
  m.kind = delay ? Kind::delay : Kind::bounce;
  for (auto& s : scraped.recipients) {
    if (iequals(s.address, notice_from)) continue;
    RecipientReport r;
    r.recipient = s.address;
    r.reply = std::string(trim(s.diagnostic));
    const ReplyParts parts = scan_reply(r.reply);
    r.status = parts.enhanced;
    r.action = delay ? "delayed" : "failed";
    r.verdict = rules.classify_status(r.status, r.reply);
    if (r.verdict.reason == "userunknown" && rejected_after_data(r.reply)) r.verdict = rules.verdict_for("filtered");
    m.recipients.push_back(std::move(r));
  }
  if (m.recipients.empty()) {
    // A notice that names no recipient: classify its text; the returned message's To
    // is the best guess for whom it concerns.
    RecipientReport r;
    r.recipient = first_address(field(g.returned_headers, "To"));
    r.reply = scraped.fallback_diagnostic;
    r.status = scan_reply(r.reply).enhanced;
    r.action = delay ? "delayed" : "failed";
    r.verdict = rules.classify_status(r.status, r.reply.empty() ? text.substr(0, 4000) : r.reply);
    // A failure notice never reports a delivery, whatever greeting its transcript quotes.
    if (r.verdict.reason == "delivered") r.verdict = rules.verdict_for("undefined");
    m.recipients.push_back(std::move(r));
  }
}

}  // namespace

Message parse(std::string_view raw, const Rules& rules) {
  init_gmime();
  Message m;
  GPtr<GMimeStream> stream(g_mime_stream_mem_new_with_buffer(raw.data(), raw.size()));
  GPtr<GMimeParser> parser(g_mime_parser_new_with_stream(stream.get()));
  GPtr<GMimeMessage> message(g_mime_parser_construct_message(parser.get(), nullptr));
  if (!message) return m;
  auto* top = reinterpret_cast<GMimeObject*>(message.get());

  const char* subject = g_mime_message_get_subject(message.get());
  m.subject = subject != nullptr ? std::string(trim(subject)) : std::string();
  m.from = first_address(header(top, "From"));
  for (const char* name : {"To", "Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To"}) {
    std::vector<std::string> addresses;
    GMimeHeaderList* list = g_mime_object_get_header_list(top);
    const int n = list != nullptr ? g_mime_header_list_get_count(list) : 0;
    for (int i = 0; i < n; ++i) {
      GMimeHeader* h = g_mime_header_list_get_header_at(list, i);
      const char* hname = g_mime_header_get_name(h);
      const char* value = g_mime_header_get_value(h);
      if (hname != nullptr && value != nullptr && iequals(hname, name)) collect_addresses(value, addresses);
    }
    for (auto& a : addresses) add_candidate(m, std::move(a));
  }

  Gathered g;
  walk(g_mime_message_get_mime_part(message.get()), g, 0);

  GMimeContentType* type = g_mime_object_get_content_type(g_mime_message_get_mime_part(message.get()));
  const char* report_type = type != nullptr ? g_mime_content_type_get_parameter(type, "report-type") : nullptr;
  const std::string report = report_type != nullptr ? lower_ascii(report_type) : std::string();
  const bool delay_subject = subject_says_delay(m.subject);
  if (g.dsn.empty()) {
    // Delivery-status fields pasted into the text (broken MIME, or MTAs that inline them).
    for (const auto& text : g.texts)
      for (auto& block : parse_field_blocks(text))
        if (!field(block, "Final-Recipient").empty() && (!field(block, "Action").empty() || !field(block, "Status").empty()))
          g.dsn.push_back(std::move(block));
  }
  const bool daemon = is_daemon_sender(m.from);

  if (!g.feedback.empty() || report == "feedback-report") {
    from_feedback(g, rules, m);
  } else if (from_ses_json(g, rules, m)) {
    // kind and recipients set
  } else if (!g.dsn.empty() && from_dsn(g, rules, delay_subject, m)) {
    // kind and recipients set
  } else if (daemon || subject_says_ndr(m.subject) || report == "delivery-status") {
    from_ndr_text(g, rules, m.from, delay_subject, m);
  } else if (is_autoreply(top, m.subject)) {
    m.kind = Kind::autoreply;
    RecipientReport r;
    r.recipient = m.from;
    r.verdict = rules.verdict_for("vacation");
    m.recipients.push_back(std::move(r));
  } else if (g.has_returned_message && lower_ascii(m.subject).find("complaint") != std::string::npos) {
    // Pre-ARF feedback loops (e.g. Hotmail JMRP) forward the message with a "complaint" subject.
    from_feedback(g, rules, m);
  } else if (looks_like_reply(top, m.subject)) {
    m.kind = Kind::reply;
  }

  // The returned message: its envelope sender is our VERP address, its To the recipient.
  for (const char* name : {"Return-Path", "X-Envelope-From", "Sender", "From", "To"}) {
    std::vector<std::string> addresses;
    collect_addresses(field(g.returned_headers, name), addresses);
    for (auto& a : addresses) add_candidate(m, std::move(a));
  }
  if (m.original_message_id.empty())
    m.original_message_id = std::string(trim(extract_angle(field(g.returned_headers, "Message-ID"))));
  return m;
}

}  // namespace kurier::bounce
