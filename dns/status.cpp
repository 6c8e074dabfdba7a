// Names of resolution outcomes, for logs and attempt records. Any thread.
#include "dns/mx_resolver.h"

namespace kurier::dns {

const char* to_string(Status status) {
  switch (status) {
    case Status::ok: return "ok";
    case Status::null_mx: return "null_mx";
    case Status::nxdomain: return "nxdomain";
    case Status::no_mail_host: return "no_mail_host";
    case Status::temporary: return "temporary";
  }
  return "unknown";
}

}  // namespace kurier::dns
