// The run-time choice of instruction set (cpu_isa.h). The cap lives in one atomic, read with
// relaxed loads on every dispatch (the multi-versioned functions call cpu_isa() once per row).
#include "kernels/x86/cpu_isa.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "bnlab/error.h"

namespace bnlab::kernels {
namespace {

constexpr const char* kVariable = "BNLAB_MAX_CPU_ISA";

struct Cpu {
  Isa best;     // what the target_clones resolver would pick: x86-64-v4, v3, or baseline
  bool avx512f;  // what the AVX-512 intrinsic paths need
};

Cpu detect() {
#if defined(__x86_64__)
  __builtin_cpu_init();
#if defined(__clang__)  // clang 14 knows no level names (nor f16c, movbe) here: the levels' main features
  const bool v3 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                  __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2");
  const bool v4 = v3 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                  __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
#else  // GCC: the levels target_clones' resolver checked, by name
  const bool v3 = __builtin_cpu_supports("x86-64-v3"), v4 = __builtin_cpu_supports("x86-64-v4");
#endif
  return {v4 ? Isa::Avx512 : v3 ? Isa::Avx2 : Isa::Baseline, __builtin_cpu_supports("avx512f") != 0};
#else
  return {Isa::Baseline, false};
#endif
}

const Cpu& cpu() {
  static const Cpu c = detect();
  return c;
}

Isa cap_from_environment() {
  const char* value = std::getenv(kVariable);
  if (!value || !*value) return Isa::Avx512;
  try {
    return parse_isa(value, kVariable);
  } catch (const Error& e) {
    std::fprintf(stderr, "bnlab: %s; ignored, using the best the CPU has\n", e.what());
    return Isa::Avx512;
  }
}

std::atomic<Isa>& cap() {
  static std::atomic<Isa> c{cap_from_environment()};
  return c;
}

}  // namespace

Isa cpu_best_isa() { return cpu().best; }
Isa max_cpu_isa() { return cap().load(std::memory_order_relaxed); }
void set_max_cpu_isa(Isa c) { cap().store(c, std::memory_order_relaxed); }
Isa cpu_isa() { return std::min(cpu().best, max_cpu_isa()); }
bool avx512_enabled() { return cpu().avx512f && max_cpu_isa() == Isa::Avx512; }

std::string_view isa_name(Isa isa) {
  switch (isa) {
    case Isa::Avx512: return "avx512";
    case Isa::Avx2: return "avx2";
    default: return "baseline";
  }
}

Isa parse_isa(std::string_view name, std::string_view where) {
  for (const Isa isa : {Isa::Avx512, Isa::Avx2, Isa::Baseline})
    if (name == isa_name(isa)) return isa;
  std::string what(1, '\'');  // appended, not "'" + name: GCC 12 warns on the latter (-Wrestrict)
  what.append(name).append("' is not one of avx512, avx2, baseline");
  fail(where, "", what);
}

}  // namespace bnlab::kernels
