// SIGINT/SIGTERM on a watching thread (see signals.h). The thread ends on our own
// SIGUSR1 at destruction. A failed pipe() throws std::runtime_error at construction.
#include "engine/cli/signals.h"

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

namespace kurier::engine {
namespace {

// SIGINT and SIGTERM, plus SIGUSR1: the destructor's wake-up for the watching thread.
sigset_t watched_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGUSR1);
  return set;
}

}  // namespace

SignalWatcher::SignalWatcher(std::function<void(int signal)> on_signal) : on_signal_(std::move(on_signal)) {
  const sigset_t set = watched_signals();
  pthread_sigmask(SIG_BLOCK, &set, &saved_mask_);
  if (::pipe2(pipe_, O_CLOEXEC | O_NONBLOCK) != 0)
    throw std::runtime_error(std::string("cannot watch signals: pipe: ") + std::strerror(errno));
  thread_ = std::thread([this] { loop(); });
}

SignalWatcher::~SignalWatcher() {
  done_ = true;
  pthread_kill(thread_.native_handle(), SIGUSR1);
  thread_.join();
  ::close(pipe_[0]);
  ::close(pipe_[1]);
  pthread_sigmask(SIG_SETMASK, &saved_mask_, nullptr);
}

void SignalWatcher::block() {
  const sigset_t set = watched_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

void SignalWatcher::die_by(int signal) {
  std::signal(signal, SIG_DFL);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, signal);
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
  std::raise(signal);
  std::_Exit(128 + signal);  // not reached: the default action of SIGINT/SIGTERM ends the process
}

void SignalWatcher::loop() {
  const sigset_t set = watched_signals();
  for (;;) {
    int signal = 0;
    if (sigwait(&set, &signal) != 0) continue;
    if (signal == SIGUSR1 || done_) return;  // our own wake-up at shutdown
    count_.fetch_add(1);
    const char byte = 1;
    (void)!::write(pipe_[1], &byte, 1);
    if (on_signal_) on_signal_(signal);
  }
}

}  // namespace kurier::engine
