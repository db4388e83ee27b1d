// Built in place of mpi_comm.cpp when MPI was not found: the library works, distributed runs
// are refused with a clear message.
#include "bnlab/comm.h"
#include "bnlab/error.h"

namespace bnlab {

bool mpi_available() { return false; }

std::unique_ptr<Communicator> make_mpi_communicator() {
  fail("--distributed", "", "this bnlab was built without MPI (install libopenmpi-dev and rebuild)");
}

}  // namespace bnlab
