// Message composition for delivery (engine/delivery/compose.h): campaign contexts on the
// feeder's thread, rendering on a worker, signatures on the signing pool. A key that can
// no longer be loaded is logged and kept in the context (its messages are deferred).
#include "engine/delivery/compose.h"

#include <ctime>
#include <exception>

#include <nlohmann/json.hpp>

#include "common/asio.h"
#include "common/log.h"
#include "dkim/signer.h"
#include "engine/intake/address.h"
#include "engine/intake/campaign.h"

namespace kurier::engine {
namespace {

std::string rfc5322_date(std::int64_t now_ms) {
  std::time_t t = static_cast<std::time_t>(now_ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S +0000", &tm);
  return buf;
}

// The header section of a rendered message (CRLF line ends), without the body.
std::string_view header_section(std::string_view message) { return message.substr(0, message.find("\r\n\r\n")); }

// Keys were checked at submission; if one has gone since, the campaign's messages are
// deferred (never sent unsigned) and the cause is logged and recorded.
void load_signer(CampaignContext& ctx) {
  auto settings = nlohmann::json::parse(ctx.campaign.settings, nullptr, false);
  if (!settings.is_object() || !settings.contains("dkim")) return;
  std::vector<dkim::KeySpec> keys;
  for (const auto& k : settings["dkim"])
    keys.push_back({k.value("domain", ""), k.value("selector", ""), k.value("key", "")});
  try {
    ctx.signer = dkim::Signer::create(std::move(keys), ctx.from_domain);
  } catch (const std::exception& e) {
    ctx.signer_error = e.what();
    log::get("engine")->error("event=dkim_key_unavailable campaign={} error=\"{}\"", ctx.campaign.name, e.what());
  }
}

}  // namespace

std::shared_ptr<const CampaignContext> make_campaign_context(const queue::Campaign& campaign) {
  auto ctx = std::make_shared<CampaignContext>(CampaignContext{
      campaign, Template::compile(campaign.template_text, campaign.fields), {}, {}, {}, {}, {}, {}, {}});
  ctx->from_domain = from_address_domain(campaign.from);
  if (ctx->from_domain.empty()) ctx->from_domain = "localhost";
  ctx->add_from = !ctx->tmpl.has_header("from");
  ctx->add_to = !ctx->tmpl.has_header("to");
  ctx->add_date = !ctx->tmpl.has_header("date");
  ctx->add_message_id = !ctx->tmpl.has_header("message-id");
  load_signer(*ctx);
  return ctx;
}

MessageNeeds message_needs(const CampaignContext& campaign, std::string_view rcpt_to, std::string_view message) {
  MessageNeeds needs;
  needs.eight_bit = campaign.tmpl.eight_bit() || has_8bit(message);
  // SMTPUTF8 only when something really is UTF-8: the local part, or raw UTF-8 in the
  // header section (RFC 6532; the template's own header lines).
  needs.smtputf8 = has_8bit(rcpt_to) || has_8bit(header_section(message));
  return needs;
}

void MessageComposer::render(const Job& job, std::int64_t now_ms, std::string& out) {
  const CampaignContext& ctx = *job.campaign;
  std::string headers;
  if (ctx.add_message_id) {
    headers += "Message-ID: <";
    headers += std::to_string(job.recipient.key.campaign) + "." + std::to_string(job.recipient.key.recipient) + "." +
               std::to_string(ctx.campaign.created_ms) + "@" + ctx.from_domain + ">\r\n";
  }
  if (ctx.add_date) {
    if (now_ms / 1000 != date_second_) {
      date_second_ = now_ms / 1000;
      date_ = rfc5322_date(now_ms);
    }
    headers += "Date: " + date_ + "\r\n";
  }
  if (ctx.add_from) headers += "From: " + ctx.campaign.from + "\r\n";
  // The RCPT TO form (A-labels), so an IDN domain adds no UTF-8 to the header.
  if (ctx.add_to) headers += "To: <" + ascii_address(job.recipient.address) + ">\r\n";
  values_.clear();
  for (const auto& f : job.recipient.fields) values_.emplace_back(f);
  out.clear();
  out.reserve(ctx.tmpl.literal_size() + headers.size() + 256);
  ctx.tmpl.render(values_, headers, out);
}

asio::awaitable<std::string> sign_on_pool(asio::thread_pool& pool, std::shared_ptr<const dkim::Signer> signer,
                                          const std::string& message) {
  auto initiate = [&pool, signer, &message](auto handler) {
    asio::post(pool, [signer, &message, handler = std::move(handler)]() mutable {
      std::exception_ptr error;
      std::string header;
      try {
        header = signer->sign(message);
      } catch (...) {
        error = std::current_exception();
      }
      auto executor = asio::get_associated_executor(handler);
      asio::post(executor, [handler = std::move(handler), error, header = std::move(header)]() mutable {
        handler(error, std::move(header));
      });
    });
  };
  co_return co_await asio::async_initiate<decltype(asio::use_awaitable), void(std::exception_ptr, std::string)>(
      std::move(initiate), asio::use_awaitable);
}

}  // namespace kurier::engine
