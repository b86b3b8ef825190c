#include "sinks/transports/output_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

#include <fmt/format.h>

namespace clearcap {
namespace {

Result<int> fail(const std::string& path, int err, std::string_view why) {
  return make_error(fmt::format("{}: {}", path, why), err);
}

// Checks an existing file opened without following a link and prepares it.
Result<int> adopt_existing(const std::string& path, int fd, OpenFile how, mode_t mode) {
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    return fail(path, e, fmt::format("cannot inspect: {}", std::strerror(e)));
  }
  const uid_t me = geteuid();
  if (st.st_uid != me) {
    ::close(fd);
    return fail(path, EPERM,
                fmt::format("exists and belongs to uid {}, not to the user running clearcap (uid {}): refusing to "
                            "write plaintext or keys into a file someone else can read; remove it or choose another path",
                            st.st_uid, me));
  }
  if (S_ISREG(st.st_mode)) {
    if (st.st_nlink > 1) {
      ::close(fd);
      return fail(path, EPERM,
                  fmt::format("is a regular file with {} hard links: refusing to write through a link that may have "
                              "been planted; remove it or choose another path",
                              st.st_nlink));
    }
    if ((st.st_mode & 07777 & ~mode) != 0 && fchmod(fd, st.st_mode & 07777 & mode) != 0) {
      const int e = errno;
      ::close(fd);
      return fail(path, e, fmt::format("cannot narrow its mode to {:04o}: {}", mode, std::strerror(e)));
    }
    if (how == OpenFile::kReplace && ftruncate(fd, 0) != 0) {
      const int e = errno;
      ::close(fd);
      return fail(path, e, fmt::format("cannot empty it for a new capture: {}", std::strerror(e)));
    }
  } else if (!S_ISCHR(st.st_mode) && !S_ISFIFO(st.st_mode)) {
    ::close(fd);
    return fail(path, EINVAL, "is not a regular file, a device or a FIFO");
  }
  // Opened non-blocking so that a FIFO without a reader fails at once; writes block.
  fcntl(fd, F_SETFL, (fcntl(fd, F_GETFL) & ~O_NONBLOCK) | O_APPEND);
  return fd;
}

}  // namespace

Result<int> open_output_file(const std::string& path, OpenFile how, mode_t mode) {
  if (path.empty()) return make_error("an output file path is empty", EINVAL);
  if (path.find('\0') != std::string::npos) return make_error("an output file path holds a NUL byte", EINVAL);
  // Two rounds: the file may vanish between the exclusive create failing and
  // the open of the existing file.
  for (int round = 0; round < 3; ++round) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, mode);
    if (fd >= 0) {
      if (fchmod(fd, mode) != 0) {
        const int e = errno;
        ::close(fd);
        return fail(path, e, fmt::format("cannot set mode {:04o}: {}", mode, std::strerror(e)));
      }
      fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_APPEND);
      return fd;
    }
    if (errno != EEXIST) {
      const int e = errno;
      return fail(path, e,
                  fmt::format("cannot create: {}; check the directory exists and is writable", std::strerror(e)));
    }
    fd = ::open(path.c_str(), O_WRONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd >= 0) return adopt_existing(path, fd, how, mode);
    const int e = errno;
    if (e == ENOENT) continue;
    // /dev/stdout and friends are links, in a directory only root can change.
    if (e == ELOOP && path.starts_with("/dev/")) {
      fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
      if (fd >= 0) return adopt_existing(path, fd, how, mode);
    }
    if (e == ELOOP)
      return fail(path, e, "is a symbolic link: refusing to follow it (it may point at a file of another user); "
                           "remove it or choose another path");
    if (e == ENXIO) return fail(path, e, "is a FIFO that nobody reads");
    return fail(path, e, fmt::format("cannot open for writing: {}", std::strerror(e)));
  }
  return fail(path, EAGAIN, "keeps appearing and disappearing while being opened");
}

Result<mode_t> parse_file_mode(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return make_error(fmt::format("--file-mode {}: {}; expected octal such as 0600 or 0640", text, why), EINVAL);
  };
  if (text.size() < 3 || text.size() > 4) return bad("not 3 or 4 octal digits");
  unsigned v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v, 8);
  if (ec != std::errc() || end != text.data() + text.size()) return bad("not an octal number");
  if (v > 0777) return bad("setuid, setgid and sticky bits are not for output files");
  if ((v & 0600) != 0600) return bad("the owner must be able to read and write the file");
  return static_cast<mode_t>(v);
}

bool same_file_as_any(const std::string& path, std::span<const std::string> others) {
  struct stat a {};
  if (::stat(path.c_str(), &a) != 0) return false;
  for (const auto& o : others) {
    struct stat b {};
    if (::stat(o.c_str(), &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino) return true;
  }
  return false;
}

}  // namespace clearcap
