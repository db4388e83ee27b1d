// Ctrl-C or SIGTERM during `bnlab train`: the loop finishes its step, writes the checkpoint and
// returns; a second signal ends the process at once. bnlab's own threads (this one, OpenMP's and
// MPI's, all started after it) block both signals, and one waiting thread takes them with
// sigwait, so they never interrupt the compute threads. Libraries' threads started when they
// were loaded (OpenBLAS's pool, idle: bnlab calls it single-threaded) do not block them; a
// handler that only sets the same flag serves them. With the handler alone the kernel ran it on
// whichever thread it picked, in the middle of a training step, and now and then (one run in
// thirty, one in seven with another heap layout) the interrupted run died of a corrupted heap
// inside oneDNN's sgemm; none did in 36 runs since.
#pragma once

#include <signal.h>

#include <atomic>
#include <thread>

namespace bnlab::cli {

class StopOnSignal {
 public:
  // Before MPI and OpenMP start their threads: threads inherit the blocked signals.
  StopOnSignal();
  ~StopOnSignal();
  StopOnSignal(const StopOnSignal&) = delete;
  StopOnSignal& operator=(const StopOnSignal&) = delete;

  const std::atomic<bool>* requested() const;
  int signal() const;  // the first signal received, 0 if none

 private:
  void wait();

  sigset_t signals_, previous_;
  std::atomic<bool> done_{false};
  std::thread waiter_;
};

}  // namespace bnlab::cli
