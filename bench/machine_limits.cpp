// The machine's own ceilings, measured in the run that uses them: bench/compare divides bnlab's
// figures by these, so that a figure from one CPU can be read against another's.
//   build/bench/machine_limits [--threads N] [--seconds S]
// Prints JSON:
//   cpu     the model name, the vector instruction sets the CPU reports, the vector width used
//   fma     single-precision multiply-add throughput (GFLOP/s, 2 per multiply-add) on one thread
//           and on N threads: independent multiply-add chains on the widest registers the CPU has
//           (AVX-512, else AVX2 with FMA, else SSE2 multiplies and adds); the roofline's roof
//   copy    memcpy bandwidth of a buffer far larger than the caches, on one thread and cut into
//           one slice per thread; GB/s count the bytes read plus the bytes written (STREAM's rule)
// Each figure is the best of several timed repetitions (a peak, not a median: other work on the
// machine only ever slows a repetition down).
#include <CLI/CLI.hpp>
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Multiply-add chains: kChains independent accumulators, each a = a * b + c, so that the
// multiply-add units' latency (4 cycles, 2 units: 8 in flight) is covered. Returns a value that
// depends on every result, so the loop cannot be dropped.
constexpr int kChains = 12;

__attribute__((target("avx512f"))) float fma_chains_avx512(int64_t iters) {
  __m512 a[kChains];
  for (int j = 0; j < kChains; ++j) a[j] = _mm512_set1_ps(1.0f + 0.01f * j);
  const __m512 b = _mm512_set1_ps(0.9999999f), c = _mm512_set1_ps(1e-7f);
  for (int64_t i = 0; i < iters; ++i)
    for (int j = 0; j < kChains; ++j) a[j] = _mm512_fmadd_ps(a[j], b, c);
  alignas(64) float lanes[16];
  __m512 s = a[0];
  for (int j = 1; j < kChains; ++j) s = _mm512_add_ps(s, a[j]);
  _mm512_store_ps(lanes, s);  // not _mm512_reduce_add_ps: GCC 12 warns inside it
  float total = 0;
  for (float v : lanes) total += v;
  return total;
}

__attribute__((target("avx2,fma"))) float fma_chains_avx2(int64_t iters) {
  __m256 a[kChains];
  for (int j = 0; j < kChains; ++j) a[j] = _mm256_set1_ps(1.0f + 0.01f * j);
  const __m256 b = _mm256_set1_ps(0.9999999f), c = _mm256_set1_ps(1e-7f);
  for (int64_t i = 0; i < iters; ++i)
    for (int j = 0; j < kChains; ++j) a[j] = _mm256_fmadd_ps(a[j], b, c);
  alignas(32) float lanes[8];
  __m256 s = a[0];
  for (int j = 1; j < kChains; ++j) s = _mm256_add_ps(s, a[j]);
  _mm256_store_ps(lanes, s);
  float total = 0;
  for (float v : lanes) total += v;
  return total;
}

float mul_add_chains_sse2(int64_t iters) {  // no FMA: a multiply and an add, 2 FLOP per lane
  __m128 a[kChains];
  for (int j = 0; j < kChains; ++j) a[j] = _mm_set1_ps(1.0f + 0.01f * j);
  const __m128 b = _mm_set1_ps(0.9999999f), c = _mm_set1_ps(1e-7f);
  for (int64_t i = 0; i < iters; ++i)
    for (int j = 0; j < kChains; ++j) a[j] = _mm_add_ps(_mm_mul_ps(a[j], b), c);
  alignas(16) float lanes[4];
  __m128 s = a[0];
  for (int j = 1; j < kChains; ++j) s = _mm_add_ps(s, a[j]);
  _mm_store_ps(lanes, s);
  return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}

struct Vector {
  const char* name;
  int lanes;
  float (*chains)(int64_t);
};

Vector widest_vector() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return {"avx512", 16, fma_chains_avx512};
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return {"avx2+fma", 8, fma_chains_avx2};
  return {"sse2", 4, mul_add_chains_sse2};
}

volatile float g_sink;  // keeps the chains' results alive

// GFLOP/s of `threads` threads each running the chains `iters` times at once.
double fma_gflops(const Vector& v, int threads, int64_t iters, int reps) {
  double best = 0;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
#pragma omp parallel num_threads(threads)
    { g_sink = v.chains(iters); }
    const double s = seconds_since(t0);
    best = std::max(best, 2.0 * v.lanes * kChains * static_cast<double>(iters) * threads / s / 1e9);
  }
  return best;
}

// GB/s (read + written) of copying `bytes` with `threads` threads, one slice each, each slice
// first touched by the thread that copies it.
double copy_gbs(int threads, size_t bytes, int reps) {
  auto alloc = [&] { return static_cast<char*>(std::aligned_alloc(64, bytes)); };
  std::unique_ptr<char, decltype(&std::free)> src(alloc(), std::free), dst(alloc(), std::free);
  if (!src || !dst) throw std::runtime_error("machine_limits: cannot allocate the copy's buffers");
  auto slice = [&](int t, size_t* begin, size_t* len) {
    *begin = bytes / 64 * t / threads * 64;
    *len = (t + 1 == threads ? bytes : bytes / 64 * (t + 1) / threads * 64) - *begin;
  };
#pragma omp parallel num_threads(threads)
  {
    size_t b, n;
    slice(omp_get_thread_num(), &b, &n);
    std::memset(src.get() + b, 1, n);
    std::memset(dst.get() + b, 2, n);
  }
  double best = 0;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
#pragma omp parallel num_threads(threads)
    {
      size_t b, n;
      slice(omp_get_thread_num(), &b, &n);
      std::memcpy(dst.get() + b, src.get() + b, n);
    }
    best = std::max(best, 2.0 * static_cast<double>(bytes) / seconds_since(t0) / 1e9);
  }
  if (dst.get()[bytes - 1] != 1) throw std::runtime_error("machine_limits: the copy did not copy");
  return best;
}

std::string cpuinfo_field(const std::string& key) {
  std::ifstream f("/proc/cpuinfo");
  for (std::string line; std::getline(f, line);) {
    if (line.rfind(key, 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(" \t", colon + 1));
    }
  }
  return "";
}

json cpu_description(const Vector& v) {
  json isa = json::array();
  std::istringstream flags(cpuinfo_field("flags"));
  for (std::string f; flags >> f;) {
    if (f == "sse2" || f == "avx" || f == "avx2" || f == "fma" || f.rfind("avx512", 0) == 0 || f == "avx_vnni" ||
        f == "amx_tile" || f == "f16c")
      isa.push_back(f);
  }
  return {{"model", cpuinfo_field("model name")},
          {"family", cpuinfo_field("cpu family")},
          {"model_number", cpuinfo_field("model")},
          {"isa", isa},
          {"vector", v.name}};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"The machine's FMA throughput and copy bandwidth, as JSON for bench/compare"};
  int threads = omp_get_num_procs();
  double target_seconds = 0.2;
  app.add_option("--threads", threads, "Threads for the all-threads figures")->check(CLI::Range(1, 1024))->capture_default_str();
  app.add_option("--seconds", target_seconds, "Length of one timed FMA repetition")->check(CLI::Range(0.01, 10.0))->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    const Vector v = widest_vector();
    // Calibrate: iterations for about target_seconds on one thread.
    int64_t iters = 1 << 16;
    while (true) {
      const auto t0 = Clock::now();
      g_sink = v.chains(iters);
      const double s = seconds_since(t0);
      if (s > target_seconds / 4 || iters > (int64_t{1} << 40)) {
        iters = std::max<int64_t>(1, static_cast<int64_t>(iters * target_seconds / std::max(s, 1e-9)));
        break;
      }
      iters *= 4;
    }
    const size_t copy_bytes = size_t{256} << 20;  // 256 MiB each way: far beyond any L3 here
    json out = {{"cpu", cpu_description(v)},
                {"threads", threads},
                {"fma",
                 {{"gflops_1thread", fma_gflops(v, 1, iters, 5)},
                  {"gflops_all", fma_gflops(v, threads, iters, 5)},
                  {"chains", kChains},
                  {"lanes", v.lanes}}},
                {"copy",
                 {{"bytes", copy_bytes},
                  {"gbs_1thread", copy_gbs(1, copy_bytes, 5)},
                  {"gbs_all", copy_gbs(threads, copy_bytes, 5)}}}};
    std::printf("%s\n", out.dump(2).c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
