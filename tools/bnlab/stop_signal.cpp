#include "stop_signal.h"

#include <pthread.h>

#include <csignal>

namespace bnlab::cli {
namespace {

std::atomic<int> g_stop_signals{0};  // received so far
std::atomic<int> g_first_signal{0};
std::atomic<bool> g_stop_requested{false};

// The first signal asks to stop; a later one ends the process with the signal's default action.
void on_stop_signal_received(int signal) {
  if (g_stop_signals.fetch_add(1) == 0) {
    g_first_signal.store(signal);
    g_stop_requested.store(true);
    return;
  }
  std::signal(signal, SIG_DFL);
  sigset_t one;  // blocked in the waiting thread, and in a handler while it runs
  sigemptyset(&one);
  sigaddset(&one, signal);
  pthread_sigmask(SIG_UNBLOCK, &one, nullptr);
  std::raise(signal);
}

extern "C" void on_stop_signal(int signal) { on_stop_signal_received(signal); }

}  // namespace

StopOnSignal::StopOnSignal() {
  sigemptyset(&signals_);
  sigaddset(&signals_, SIGINT);
  sigaddset(&signals_, SIGTERM);
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
  pthread_sigmask(SIG_BLOCK, &signals_, &previous_);
  waiter_ = std::thread([this] { wait(); });
}

StopOnSignal::~StopOnSignal() {
  done_.store(true);
  pthread_kill(waiter_.native_handle(), SIGTERM);  // wakes its sigwait
  waiter_.join();
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  pthread_sigmask(SIG_SETMASK, &previous_, nullptr);
}

const std::atomic<bool>* StopOnSignal::requested() const { return &g_stop_requested; }

int StopOnSignal::signal() const { return g_first_signal.load(); }

void StopOnSignal::wait() {
  for (;;) {
    int received = 0;
    if (sigwait(&signals_, &received) != 0) continue;
    if (done_.load()) return;
    on_stop_signal_received(received);
  }
}

}  // namespace bnlab::cli
