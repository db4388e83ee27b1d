// Communicator over MPI. Reduce-then-broadcast instead of MPI_Allreduce: the MPI standard does
// not promise that an allreduce hands every rank the same bits, and replicas whose weights differ
// in the last bit would drift apart.
#include <mpi.h>

#include <algorithm>
#include <climits>

#include "bnlab/comm.h"
#include "bnlab/error.h"

namespace bnlab {
namespace {

// MPI counts are int: long buffers go in pieces.
constexpr int64_t kChunk = INT_MAX / 8;

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator() {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
      int provided = 0;
      MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
    }
    // An error on any rank ends the job (the default handler aborts all ranks): no hangs.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
  }
  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void allreduce_sum(double* data, int64_t n) override { reduce_broadcast(data, n, MPI_DOUBLE); }
  void allreduce_sum(float* data, int64_t n) override { reduce_broadcast(data, n, MPI_FLOAT); }
  void broadcast(float* data, int64_t n) override { chunked_broadcast(data, n, MPI_FLOAT, sizeof(float)); }
  void broadcast(int64_t* data, int64_t n) override {
    chunked_broadcast(data, n, MPI_INT64_T, sizeof(int64_t));
  }

 private:
  template <typename T>
  void reduce_broadcast(T* data, int64_t n, MPI_Datatype type) {
    for (int64_t begin = 0; begin < n; begin += kChunk) {
      const int count = static_cast<int>(std::min(kChunk, n - begin));
      T* chunk = data + begin;
      MPI_Reduce(rank_ == 0 ? MPI_IN_PLACE : chunk, rank_ == 0 ? chunk : nullptr, count, type, MPI_SUM, 0,
                 MPI_COMM_WORLD);
      MPI_Bcast(chunk, count, type, 0, MPI_COMM_WORLD);
    }
  }
  void chunked_broadcast(void* data, int64_t n, MPI_Datatype type, size_t item) {
    for (int64_t begin = 0; begin < n; begin += kChunk) {
      const int count = static_cast<int>(std::min(kChunk, n - begin));
      MPI_Bcast(static_cast<char*>(data) + begin * static_cast<int64_t>(item), count, type, 0, MPI_COMM_WORLD);
    }
  }

  int rank_ = 0, size_ = 1;
};

}  // namespace

bool mpi_available() { return true; }

std::unique_ptr<Communicator> make_mpi_communicator() { return std::make_unique<MpiCommunicator>(); }

}  // namespace bnlab
