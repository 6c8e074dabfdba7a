// The SMTP dispatcher: the production side of the seam in engine/delivery/dispatcher.h.
// A session resolves the destination's MX hosts, applies MTA-STS and the TLS policy,
// connects (smtp/client.h), then renders, signs and sends each message the slot hands it
// over one connection (pipelined, reused) and reports every reply.
//
// Ownership and threads: the factory owns what all workers' sessions share (the MTA-STS
// policy cache, the DKIM signing pool, the VERP signer, the session options); it lives in
// the engine and outlives the dispatchers it makes. A dispatcher runs on its worker's
// thread. Failures are data: DNS and connect failures go to the slot, never exceptions.
#pragma once

#include <memory>

#include "engine/core/clock.h"
#include "engine/core/config.h"
#include "engine/delivery/dispatcher.h"

namespace kurier::engine {

std::unique_ptr<DispatcherFactory> make_smtp_dispatcher_factory(const Config& config, Clock clock);

}  // namespace kurier::engine
