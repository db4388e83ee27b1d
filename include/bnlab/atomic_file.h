// Crash-safe file replacement: write a temporary file beside the target, flush and fsync it,
// rename it over the target, fsync the directory. Readers see the old file or the new one, never
// a torn one; on any error the temporary file is removed and the old file is untouched.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>

namespace bnlab {

// `write` receives a sink to call with the file's bytes in order, any number of times.
using ByteSink = std::function<void(std::span<const uint8_t>)>;
void write_file_atomically(const std::string& path, const std::function<void(const ByteSink&)>& write);

}  // namespace bnlab
