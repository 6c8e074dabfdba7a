// The CLI's one way to handle SIGINT and SIGTERM: a SignalWatcher blocks them and
// waits for them on a thread of its own (sigwait), so what a signal does may take
// locks, log and stop an engine. Used by send, serve and top; no signal handlers.
// Construct and destroy on the main thread; count() and fd() from any thread.
#pragma once

#include <signal.h>

#include <atomic>
#include <functional>
#include <thread>

namespace kurier::engine {

class SignalWatcher {
 public:
  // Blocks SIGINT and SIGTERM (in this thread and every thread it starts from now
  // on) and starts the watching thread. For each signal, count() goes up, fd()
  // becomes readable, then `on_signal` (may be empty) runs on the watching thread.
  explicit SignalWatcher(std::function<void(int signal)> on_signal = {});
  // Stops and joins the watching thread; restores the signal mask this thread had.
  ~SignalWatcher();
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;

  int count() const { return count_.load(); }
  // Readable once a signal has arrived: a poll() loop wakes on Ctrl-C (top).
  int fd() const { return pipe_[0]; }

  // Blocks SIGINT and SIGTERM in the calling thread and in every thread it starts
  // from now on. Call it before any thread starts when the watcher itself can only
  // come later (its on_signal needs objects that start threads: serve).
  static void block();
  // What the signal would have done unhandled: ends the process by `signal`.
  [[noreturn]] static void die_by(int signal);

 private:
  void loop();

  std::function<void(int)> on_signal_;
  std::atomic<int> count_{0};
  std::atomic<bool> done_{false};
  int pipe_[2] = {-1, -1};
  sigset_t saved_mask_{};
  std::thread thread_;
};

}  // namespace kurier::engine
