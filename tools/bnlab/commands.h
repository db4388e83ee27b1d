// The subcommands of `bnlab`: each adds its flags to the parser and runs through the library.
#pragma once

#include <CLI/CLI.hpp>

namespace bnlab::cli {

// Thrown by a command that stopped on a signal after saving its work; main exits with `status`.
struct Interrupted {
  int status;
};

void add_train_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_export_command(CLI::App& app);
void add_summary_command(CLI::App& app);
void add_predict_command(CLI::App& app);
void add_experiment_command(CLI::App& app);
void add_recalibrate_command(CLI::App& app);
void add_serve_command(CLI::App& app);

}  // namespace bnlab::cli
