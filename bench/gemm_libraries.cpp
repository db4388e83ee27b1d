// The sgemm of the three well-kept BLAS that Debian has, side by side, at the shapes bnlab's
// kernels call (one thread each, as bnlab's own thread shares call them): oneDNN (what
// src/kernels/gemm.cpp uses for float), OpenBLAS and BLIS. BLIS is loaded at run time
// (libblis4-openmp or libblis4-pthread) with its own symbols, so it needs no build dependency and
// cannot shadow OpenBLAS's; without it its rows are skipped.
//   build/bench/gemm_libraries [--benchmark_filter=Winograd]
#include <benchmark/benchmark.h>
#include <cblas.h>
#include <dlfcn.h>
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>

#include <string>
#include <vector>

namespace {

enum class Library { OneDnn, OpenBlas, Blis };

using CblasSgemm = void (*)(CBLAS_ORDER, CBLAS_TRANSPOSE, CBLAS_TRANSPOSE, int, int, int, float, const float*, int,
                            const float*, int, float, float*, int);

// BLIS's CBLAS, from its own library: RTLD_DEEPBIND keeps its calls inside BLIS.
CblasSgemm blis_sgemm() {
  static CblasSgemm fn = [] {
    for (const char* name : {"libblis.so.4", "libblis.so"}) {
      if (void* lib = dlopen(name, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND)) {
        if (auto set_threads = reinterpret_cast<void (*)(long)>(dlsym(lib, "bli_thread_set_num_threads"))) {
          set_threads(1);
        }
        return reinterpret_cast<CblasSgemm>(dlsym(lib, "cblas_sgemm"));
      }
    }
    return static_cast<CblasSgemm>(nullptr);
  }();
  return fn;
}

// C (M, N) = op(A) op(B), row-major, op(A) (M, K), op(B) (K, N).
void BM_Sgemm(benchmark::State& state, Library library, const char* what, int M, int N, int K, bool ta, bool tb) {
  std::vector<float> A(static_cast<size_t>(M) * K, 0.5f), B(static_cast<size_t>(K) * N, 0.25f), C(static_cast<size_t>(M) * N);
  const int lda = ta ? M : K, ldb = tb ? K : N;
  CblasSgemm blis = library == Library::Blis ? blis_sgemm() : nullptr;
  if (library == Library::Blis && !blis) {
    state.SkipWithError("BLIS not installed (apt-get install libblis4-openmp)");
    return;
  }
  for (auto _ : state) {
    switch (library) {
      case Library::OneDnn:
        dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, 1.0f, A.data(), lda, B.data(), ldb, 0.0f, C.data(), N);
        break;
      case Library::OpenBlas:
        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, 1.0f,
                    A.data(), lda, B.data(), ldb, 0.0f, C.data(), N);
        break;
      case Library::Blis:
        blis(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, 1.0f, A.data(),
             lda, B.data(), ldb, 0.0f, C.data(), N);
        break;
    }
    benchmark::DoNotOptimize(C.data());
  }
  state.counters["FLOP/s"] =
      benchmark::Counter(2.0 * M * N * K * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.SetLabel(what);
}

struct Shape {
  const char* what;
  int M, N, K;
  bool ta, tb;
};

// The calls of one training step of the seed network at batch 64 (per sample where bnlab
// calls them per sample), and a square one for reference.
constexpr Shape kShapes[] = {
    {"Winograd forward: U V, per sample and position", 64, 144, 32, false, false},
    {"Winograd filter gradient: dM V^T", 64, 32, 144, false, true},
    {"Winograd input gradient: U^T dM", 32, 144, 64, true, false},
    {"fc1 forward: x W^T", 64, 128, 9216, false, true},
    {"fc1 weight gradient: dy^T x", 128, 9216, 64, true, false},
    {"fc1 input gradient: dy W", 64, 9216, 128, false, false},
    {"im2col conv (K = 288)", 64, 576, 288, false, false},
    {"square", 512, 512, 512, false, false},
};

const int registered = [] {
  const std::pair<Library, const char*> libraries[] = {
      {Library::OneDnn, "onednn"}, {Library::OpenBlas, "openblas"}, {Library::Blis, "blis"}};
  for (const Shape& s : kShapes) {
    for (const auto& [library, name] : libraries) {
      const std::string id = std::string("BM_Sgemm/") + name + "/M:" + std::to_string(s.M) + "/N:" +
                             std::to_string(s.N) + "/K:" + std::to_string(s.K) + (s.ta ? "/At" : "") +
                             (s.tb ? "/Bt" : "");
      benchmark::RegisterBenchmark(id.c_str(), BM_Sgemm, library, s.what, s.M, s.N, s.K, s.ta, s.tb)
          ->UseRealTime();
    }
  }
  return 0;
}();

}  // namespace

// One thread everywhere: oneDNN's sgemm would use the whole OpenMP team outside a parallel region.
int main(int argc, char** argv) {
  omp_set_num_threads(1);
  openblas_set_num_threads(1);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
