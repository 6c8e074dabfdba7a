// kurier-sink's SMTP server session: one coroutine per connection, the transport
// (socket, TLS, timeouts, reply delay, faults) around the shared smtp::ServerDialogue.
//
// Contract: start_session() takes an accepted socket whose executor is the worker's
// io_context and runs the whole dialogue there (a session never changes thread). The
// session keeps itself alive through its pending operations; nothing deletes it by
// hand. Worker::close_all() closes every session of a worker from any thread, which
// is how SIGTERM ends open connections quickly.
//
// This is an internal header of the kurier-sink executable; both files that include
// it (session.cpp, server.cpp) need Asio anyway, so it includes common/asio.h.
#pragma once

#include <list>
#include <string>

#include "bench/sink/scripted_hooks.h"
#include "common/asio.h"

namespace kurier::sink {

class Session;

// One io_context run by one thread; the sessions accepted onto it stay on it.
class Worker {
 public:
  Worker() = default;
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  asio::io_context& context() { return context_; }
  // Closes every open session and refuses new ones. Any thread (posts to the worker).
  void close_all();

 private:
  friend class Session;
  // Declared before context_: frames destroyed with the context still unregister here.
  std::list<Session*> sessions_;  // only touched on the worker thread
  bool closing_ = false;          // only touched on the worker thread
  asio::io_context context_{1};
};

// Starts the session for `socket` (accepted with worker.context() as its executor).
void start_session(Worker& worker, asio::ip::tcp::socket socket, const ListenInfo& listen,
                   const SinkShared& shared);

}  // namespace kurier::sink
