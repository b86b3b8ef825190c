#include "sinks/transports/rotating_file.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <tuple>

#include <fmt/format.h>

#include "sinks/transports/output_file.h"

namespace clearcap {
namespace {

struct PathParts {
  std::string dir;   // with trailing '/', or empty for the current directory
  std::string stem;  // file name without the extension
  std::string ext;   // ".jsonl", or empty
};

PathParts split(const std::string& path) {
  PathParts p;
  const size_t slash = path.rfind('/');
  std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  if (slash != std::string::npos) p.dir = path.substr(0, slash + 1);
  const size_t dot = name.rfind('.');
  // A leading dot is a hidden file's name, not an extension.
  if (dot != std::string::npos && dot > 0) {
    p.stem = name.substr(0, dot);
    p.ext = name.substr(dot);
  } else {
    p.stem = name;
  }
  return p;
}

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Parses "<YYYYmmdd-HHMMSS>[-N]" into (stamp, N).
bool parse_stamp(std::string_view mid, std::string* stamp, unsigned long* n) {
  if (mid.size() < 15 || mid[8] != '-' || !all_digits(mid.substr(0, 8)) || !all_digits(mid.substr(9, 6)))
    return false;
  *stamp = std::string(mid.substr(0, 15));
  *n = 0;
  if (mid.size() == 15) return true;
  if (mid[15] != '-' || !all_digits(mid.substr(16)) || mid.size() > 16 + 9) return false;
  *n = std::stoul(std::string(mid.substr(16)));
  return true;
}

}  // namespace

RotatingFile::RotatingFile(std::string path, Options opts) : path_(std::move(path)), opts_(std::move(opts)) {}

RotatingFile::~RotatingFile() { close(); }

std::chrono::system_clock::time_point RotatingFile::now() const {
  return opts_.clock ? opts_.clock() : std::chrono::system_clock::now();
}

std::string RotatingFile::rotated_name(const std::string& path, std::chrono::system_clock::time_point when,
                                       unsigned n) {
  const PathParts p = split(path);
  const time_t t = std::chrono::system_clock::to_time_t(when);
  tm utc{};
  gmtime_r(&t, &utc);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &utc);
  return n == 0 ? fmt::format("{}{}.{}{}", p.dir, p.stem, stamp, p.ext)
                : fmt::format("{}{}.{}-{}{}", p.dir, p.stem, stamp, n, p.ext);
}

std::vector<std::string> RotatingFile::rotated_files(const std::string& path) {
  const PathParts p = split(path);
  const std::string dir = p.dir.empty() ? "." : p.dir;
  std::vector<std::tuple<std::string, unsigned long, std::string>> found;
  if (DIR* d = opendir(dir.c_str())) {
    const std::string prefix = p.stem + ".";
    while (dirent* e = readdir(d)) {
      std::string_view name = e->d_name;
      if (name.size() <= prefix.size() + p.ext.size() || !name.starts_with(prefix) || !name.ends_with(p.ext))
        continue;
      std::string_view mid = name.substr(prefix.size(), name.size() - prefix.size() - p.ext.size());
      std::string stamp;
      unsigned long n = 0;
      if (parse_stamp(mid, &stamp, &n)) found.emplace_back(stamp, n, p.dir + std::string(name));
    }
    closedir(d);
  }
  // Stamps sort as text; within one second the counter orders them.
  std::sort(found.begin(), found.end());
  std::vector<std::string> out;
  for (auto& f : found) out.push_back(std::move(std::get<2>(f)));
  return out;
}

Result<void> RotatingFile::open() {
  close();
  const bool replace = opts_.replace && !replaced_;
  auto fd_r = open_output_file(path_, replace ? OpenFile::kReplace : OpenFile::kAppend, opts_.mode);
  if (!fd_r) return tl::unexpected(fd_r.error());
  replaced_ = true;
  const int fd = *fd_r;
  struct stat st {};
  fstat(fd, &st);
  fd_ = fd;
  size_ = static_cast<uint64_t>(st.st_size);
  opened_at_ = now();
  return start_file();
}

Result<void> RotatingFile::start_file() {
  if (size_ != 0 || !opts_.header) return {};
  const std::string h = opts_.header();
  return write_all(h.data(), h.size());
}

void RotatingFile::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Result<void> RotatingFile::reopen() { return open(); }

Result<void> RotatingFile::write_all(const char* p, size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd_, p, n);
    if (w > 0) {
      p += w;
      n -= static_cast<size_t>(w);
      size_ += static_cast<uint64_t>(w);
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    const int e = w < 0 ? errno : EIO;
    return make_error(fmt::format("{}: write failed: {}", path_, std::strerror(e)), e);
  }
  return {};
}

Result<void> RotatingFile::write(std::span<const char> record) {
  if (fd_ < 0) {
    if (auto r = open(); !r) return r;
  }
  const bool too_big = opts_.max_bytes != 0 && size_ != 0 && size_ + record.size() > opts_.max_bytes;
  const bool too_old = opts_.max_age.count() != 0 && now() - opened_at_ >= opts_.max_age;
  if (too_big || too_old) {
    if (auto r = rotate(); !r) return r;
  }
  const uint64_t before = size_;
  auto r = write_all(record.data(), record.size());
  if (!r && size_ != before) {
    // A full disk (ENOSPC) or an I/O error mid-record: cut the partial
    // record off, so that whatever is written once space returns starts at
    // a record boundary (a torn JSON line or zstd frame would corrupt the
    // record after it too). O_APPEND writes land at the new end.
    if (ftruncate(fd_, static_cast<off_t>(before)) == 0) size_ = before;
  }
  return r;
}

Result<void> RotatingFile::rotate() {
  if (fd_ >= 0 && size_ == 0 && !opts_.header) {
    opened_at_ = now();  // nothing to keep: just restart the age
    return {};
  }
  const auto when = now();
  std::string target;
  for (unsigned n = 0;; ++n) {
    target = rotated_name(path_, when, n);
    if (::access(target.c_str(), F_OK) != 0) break;
  }
  close();
  if (::rename(path_.c_str(), target.c_str()) != 0) {
    const int e = errno;
    if (e != ENOENT) {  // ENOENT: moved away by someone else; just start anew
      auto r = open();  // keep writing to the old file rather than nowhere
      (void)r;
      return make_error(fmt::format("{}: cannot rotate to {}: {}", path_, target, std::strerror(e)), e);
    }
  } else {
    ++rotations_;
  }
  apply_retention();
  return open();
}

void RotatingFile::apply_retention() {
  if (opts_.keep == 0) return;
  auto files = rotated_files(path_);
  if (files.size() <= opts_.keep) return;
  for (size_t i = 0; i + opts_.keep < files.size(); ++i) ::unlink(files[i].c_str());
}

}  // namespace clearcap
