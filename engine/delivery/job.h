// What the scheduler hands a session: one recipient of one campaign, with everything a
// worker needs to render and sign that campaign's messages (built once per campaign by
// the feeder, shared read-only by every worker). Plain data; a Job moves from the
// feeder's thread to one worker thread and stays there.
#pragma once

#include <memory>
#include <string>

#include "engine/intake/template.h"
#include "queue/store.h"

namespace kurier::dkim {
class Signer;  // dkim/signer.h
}

namespace kurier::engine {

struct CampaignContext {
  queue::Campaign campaign;
  Template tmpl;
  std::string from_domain;
  std::shared_ptr<const dkim::Signer> signer;  // null: the campaign is not signed
  std::string signer_error;                    // set when its keys can no longer be loaded
  bool add_from = false;
  bool add_to = false;
  bool add_date = false;
  bool add_message_id = false;
};

struct Job {
  queue::Recipient recipient;
  std::shared_ptr<const CampaignContext> campaign;
  std::string domain;           // A-labels: DNS, shaping and metrics
  int throttled = 0;  // times put back after a throttling reply
};

}  // namespace kurier::engine
