#include "bnlab/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "bnlab/error.h"

namespace bnlab {
namespace {

[[noreturn]] void io_error(const std::string& path, const std::string& what, int err) {
  fail(path, "", what + " (" + std::strerror(err) + ")");
}

}  // namespace

void write_file_atomically(const std::string& path,
                           const std::function<void(const ByteSink&)>& write) {
  const std::string temp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) io_error(path, "cannot create " + temp, errno);
  auto abandon = [&](const std::string& what, int err) {
    ::close(fd);
    ::unlink(temp.c_str());
    io_error(path, what, err);
  };
  int write_error = 0;
  try {
    write([&](std::span<const uint8_t> bytes) {
      size_t done = 0;
      while (done < bytes.size() && write_error == 0) {
        const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) write_error = errno;
        else done += static_cast<size_t>(n);
      }
    });
  } catch (...) {
    ::close(fd);
    ::unlink(temp.c_str());
    throw;
  }
  if (write_error != 0) abandon("write failed", write_error);
  if (::fsync(fd) != 0) abandon("fsync failed", errno);
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(temp.c_str());
    io_error(path, "close failed", err);
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(temp.c_str());
    io_error(path, "cannot replace", err);
  }
  // Make the rename itself durable.
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (dir.empty()) dir = ".";
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
}

}  // namespace bnlab
