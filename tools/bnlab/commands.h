// The subcommands of `bnlab`: each adds its flags to the parser and runs through the library.
#pragma once

#include <CLI/CLI.hpp>

namespace bnlab::cli {

void add_train_command(CLI::App& app);
void add_eval_command(CLI::App& app);

}  // namespace bnlab::cli
