// Communicator over MPI. Reduce-then-broadcast instead of MPI_Allreduce: the MPI standard does
// not promise that an allreduce hands every rank the same bits, and replicas whose weights differ
// in the last bit would drift apart.
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <vector>

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
    pieces_.reserve(64);  // buckets of a step: no allocation per step after the first few
    broadcasts_.reserve(64);
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

  // Non-blocking: MPI_Ireduce to rank 0 at start_sum, then, at finish_sums and in the order the
  // pieces started, MPI_Ibcast of each piece once its reduction is complete (rank 0 must hold the
  // sum before it sends it). Every rank posts the same collectives in the same order.
  void start_sum(float* data, int64_t n) override {
    for (int64_t begin = 0; begin < n; begin += kChunk) {
      Piece p{data + begin, static_cast<int>(std::min(kChunk, n - begin)), MPI_REQUEST_NULL};
      MPI_Ireduce(rank_ == 0 ? MPI_IN_PLACE : p.data, rank_ == 0 ? p.data : nullptr, p.count, MPI_FLOAT, MPI_SUM, 0,
                  MPI_COMM_WORLD, &p.request);
      pieces_.push_back(p);
    }
  }
  void progress() override {
    for (Piece& p : pieces_) {
      int done = 0;
      if (p.request != MPI_REQUEST_NULL) MPI_Test(&p.request, &done, MPI_STATUS_IGNORE);
    }
  }
  void finish_sums() override {
    broadcasts_.assign(pieces_.size(), MPI_REQUEST_NULL);
    for (size_t i = 0; i < pieces_.size(); ++i) {
      MPI_Wait(&pieces_[i].request, MPI_STATUS_IGNORE);
      MPI_Ibcast(pieces_[i].data, pieces_[i].count, MPI_FLOAT, 0, MPI_COMM_WORLD, &broadcasts_[i]);
    }
    MPI_Waitall(static_cast<int>(broadcasts_.size()), broadcasts_.data(), MPI_STATUSES_IGNORE);
    pieces_.clear();
  }

 private:
  struct Piece {
    float* data;
    int count;
    MPI_Request request;
  };
  std::vector<Piece> pieces_;  // started, not finished
  std::vector<MPI_Request> broadcasts_;

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
