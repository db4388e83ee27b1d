// bnlab: train and evaluate batch-normalized networks. Errors in the input print one line
// "bnlab: <file>: <field>: <problem>" and exit with status 2.
#include <cstdio>
#include <cstdlib>
#include <exception>

#include "bnlab/error.h"
#include "commands.h"
#include "kernels/x86/cpu_isa.h"

int main(int argc, char** argv) {
  CLI::App app{"bnlab: train convolutional networks with batch normalization, as PyTorch does, in C++"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "bnlab 0.1.0");
  bnlab::cli::add_train_command(app);
  bnlab::cli::add_eval_command(app);
  bnlab::cli::add_recalibrate_command(app);
  bnlab::cli::add_export_command(app);
  bnlab::cli::add_summary_command(app);
  bnlab::cli::add_predict_command(app);
  bnlab::cli::add_experiment_command(app);
  bnlab::cli::add_serve_command(app);
  try {
    // The kernels would only warn about a bad value (they may first run inside a parallel
    // region); the command refuses it before any work.
    if (const char* isa = std::getenv("BNLAB_MAX_CPU_ISA")) bnlab::kernels::parse_isa(isa, "BNLAB_MAX_CPU_ISA");
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    std::fprintf(stderr, "bnlab: %s\n", e.what());  // one line, as every other bad input
    return 2;
  } catch (const bnlab::cli::Interrupted& i) {
    return i.status;
  } catch (const bnlab::Error& e) {
    std::fprintf(stderr, "bnlab: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bnlab: internal error: %s\n", e.what());
    return 1;
  }
  return 0;
}
