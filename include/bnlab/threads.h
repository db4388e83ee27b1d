// Thread count for everything bnlab runs: OpenMP teams of exactly this size, with the BLAS kept
// single-threaded under them. Same thread count and seed give bitwise identical runs.
#pragma once

namespace bnlab {

void set_threads(int threads);  // <= 0: all cores
int threads();
int available_cores();

}  // namespace bnlab
