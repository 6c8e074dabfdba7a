// Blocking TXT lookup over c-ares (dns/txt_lookup.h), for the CLI.
// Runs on the caller's thread with its own channel, polling c-ares's sockets.
// DNS failures are TxtResult values; bad options throw std::runtime_error.
#include "dns/txt_lookup.h"

#include <ares.h>
#include <poll.h>

#include <array>
#include <cerrno>
#include <memory>
#include <stdexcept>

#include "dns/ares_setup.h"

namespace kurier::dns {

namespace {

constexpr int kClassIn = 1;
constexpr int kTypeTxt = 16;

struct ChannelDestroy {
  void operator()(ares_channel channel) const noexcept { ares_destroy(channel); }
};
using ChannelPtr = std::unique_ptr<std::remove_pointer_t<ares_channel>, ChannelDestroy>;

struct Query {
  bool done = false;
  TxtResult result;
  std::string servers;  // for messages
};

void on_answer(void* arg, int status, int /*timeouts*/, unsigned char* answer, int length) {
  auto& query = *static_cast<Query*>(arg);
  query.done = true;
  TxtResult& result = query.result;
  if (status == ARES_SUCCESS) {
    ares_txt_ext* txt = nullptr;
    status = ares_parse_txt_reply_ext(answer, length, &txt);
    if (status == ARES_SUCCESS) {
      for (ares_txt_ext* part = txt; part != nullptr; part = part->next) {
        // One record's character-strings follow each other; record_start marks a new record.
        if (part->record_start || result.records.empty()) result.records.emplace_back();
        result.records.back().append(reinterpret_cast<const char*>(part->txt), part->length);
      }
      ares_free_data(txt);
      result.status = result.records.empty() ? TxtStatus::nodata : TxtStatus::ok;
      if (result.records.empty()) result.detail = "no TXT record";
      return;
    }
  }
  switch (status) {
    case ARES_ENOTFOUND:
      result.status = TxtStatus::nxdomain;
      result.detail = "NXDOMAIN";
      return;
    case ARES_ENODATA:
      result.status = TxtStatus::nodata;
      result.detail = "no TXT record";
      return;
    default:
      result.status = TxtStatus::temporary;
      result.detail = std::string(ares_strerror(status)) + " (" + query.servers + ")";
  }
}

// Drives the channel until the query's callback has run. c-ares bounds the wait:
// every try of every server ends in an answer or its timeout.
void run(ares_channel channel, const Query& query) {
  while (!query.done) {
    std::array<ares_socket_t, ARES_GETSOCK_MAXNUM> sockets{};
    const int bits = ares_getsock(channel, sockets.data(), ARES_GETSOCK_MAXNUM);
    std::array<pollfd, ARES_GETSOCK_MAXNUM> fds{};
    nfds_t count = 0;
    for (int i = 0; i < ARES_GETSOCK_MAXNUM; ++i) {
      short events = 0;
      if (ARES_GETSOCK_READABLE(bits, i)) events |= POLLIN;
      if (ARES_GETSOCK_WRITABLE(bits, i)) events |= POLLOUT;
      if (events == 0) continue;
      fds[count++] = pollfd{sockets[static_cast<std::size_t>(i)], events, 0};
    }
    timeval tv{};
    int wait_ms = 100;  // no timeout pending: look again soon (c-ares is between steps)
    if (ares_timeout(channel, nullptr, &tv) != nullptr) {
      wait_ms = static_cast<int>(tv.tv_sec * 1000 + tv.tv_usec / 1000);
    }
    const int ready = ::poll(fds.data(), count, wait_ms);
    if (ready < 0 && errno != EINTR) throw std::runtime_error("dns: poll failed");
    if (ready <= 0) {
      ares_process_fd(channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);  // timeouts
      continue;
    }
    for (nfds_t i = 0; i < count; ++i) {
      const bool readable = (fds[i].revents & (POLLIN | POLLERR | POLLHUP)) != 0;
      const bool writable = (fds[i].revents & POLLOUT) != 0;
      if (!readable && !writable) continue;
      ares_process_fd(channel, readable ? fds[i].fd : ARES_SOCKET_BAD, writable ? fds[i].fd : ARES_SOCKET_BAD);
    }
  }
}

}  // namespace

TxtResult lookup_txt(const std::string& name, const ResolverOptions& options) {
  ares_options opts{};
  opts.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;  // the name is absolute
  Query query;
  ChannelPtr channel(detail::open_channel(options, opts, ARES_OPT_FLAGS, query.servers));
  ares_query(channel.get(), name.c_str(), kClassIn, kTypeTxt, &on_answer, &query);
  run(channel.get(), query);
  return query.result;
}

}  // namespace kurier::dns
