// Collective operations among the processes of a data-parallel run. The base class is the
// single-process case (every operation a no-op); make_mpi_communicator gives the MPI one when
// bnlab was built with MPI. Sums are reduced to rank 0 and broadcast, so every rank receives
// the same bits and the replicas never drift apart.
#pragma once

#include <cstdint>
#include <memory>

namespace bnlab {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const { return 0; }
  virtual int size() const { return 1; }
  // In place: data[i] = sum over ranks of data[i].
  virtual void allreduce_sum(double* /*data*/, int64_t /*n*/) {}
  virtual void allreduce_sum(float* /*data*/, int64_t /*n*/) {}
  // In place: every rank receives rank 0's values.
  virtual void broadcast(float* /*data*/, int64_t /*n*/) {}
  virtual void broadcast(int64_t* /*data*/, int64_t /*n*/) {}

  // A sum in pieces that overlaps with other work (gradient buckets during backward): each
  // start_sum begins summing data[0, n) in place, every rank starting the same pieces in the same
  // order; progress() lets started sums advance; finish_sums() waits for all of them. The data
  // must not be touched between start_sum and finish_sums.
  virtual void start_sum(float* /*data*/, int64_t /*n*/) {}
  virtual void progress() {}
  virtual void finish_sums() {}
};

// True when this build has MPI support.
bool mpi_available();

// Initializes MPI (once per process) and returns a communicator over all its processes;
// Error if bnlab was built without MPI. MPI is finalized when the communicator is destroyed.
std::unique_ptr<Communicator> make_mpi_communicator();

}  // namespace bnlab
