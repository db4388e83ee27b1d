#include "bnlab/threads.h"

#include <omp.h>

namespace bnlab {

void set_threads(int threads) {
  // Dynamic teams would let OpenMP shrink a team, changing the static split and the bits.
  omp_set_dynamic(0);
  omp_set_num_threads(threads > 0 ? threads : available_cores());
}

int threads() { return omp_get_max_threads(); }

int available_cores() { return omp_get_num_procs(); }

}  // namespace bnlab
