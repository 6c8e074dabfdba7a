// Composing a message for one recipient: the campaign's rendering context (built once per
// campaign), the per-recipient rendering (template fields, the header fields the template
// lacks: Message-ID, Date, From, To), the DKIM signature computed on the signing pool,
// and the SMTP extensions the result needs (8BITMIME, SMTPUTF8).
// Threading: make_campaign_context() on the feeder's thread; a MessageComposer belongs to
// one worker; sign_on_pool() runs the signature on the pool and resumes on the caller's
// executor. Failures: an unloadable DKIM key is kept in CampaignContext::signer_error;
// a signing failure is rethrown from sign_on_pool().
#pragma once

#include <utility>  // Boost 1.74 coroutines with g++ 12 need this before Asio

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "engine/delivery/job.h"

namespace boost::asio {
class thread_pool;
}

namespace kurier::engine {

// The campaign's template compiled, its From domain, its DKIM signer (or why its keys
// cannot be loaded), and which header fields rendering must add.
std::shared_ptr<const CampaignContext> make_campaign_context(const queue::Campaign& campaign);

// SMTP extensions a rendered message needs.
struct MessageNeeds {
  bool eight_bit = false;  // BODY=8BITMIME
  bool smtputf8 = false;   // SMTPUTF8: a UTF-8 local part or raw UTF-8 in the header section
};
MessageNeeds message_needs(const CampaignContext& campaign, std::string_view rcpt_to, std::string_view message);

class MessageComposer {
 public:
  // Renders `job`'s message in SMTP wire form into `out` (replaced; its capacity is reused).
  void render(const Job& job, std::int64_t now_ms, std::string& out);

 private:
  std::vector<std::string_view> values_;  // the recipient's fields, reused per message
  std::int64_t date_second_ = -1;         // Date: formatted once per second
  std::string date_;
};

// The DKIM-Signature field(s) for `message`, computed on `pool` (an RSA signature takes
// about a millisecond: never on a worker's event loop). `message` must stay alive until
// the result arrives (the caller awaits it).
boost::asio::awaitable<std::string> sign_on_pool(boost::asio::thread_pool& pool,
                                                 std::shared_ptr<const dkim::Signer> signer,
                                                 const std::string& message);

}  // namespace kurier::engine
