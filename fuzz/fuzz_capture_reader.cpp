// A whole capture file (docs/capture-format.md) through CaptureReader: open,
// then every record until the end of what is readable. The reader wants a
// path to a regular file: the input is written to a memfd, opened again
// through /proc/self/fd.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "fuzz/fuzz_event.h"
#include "sinks/capture_file/capture_reader.h"

namespace {

int memfd() {
  static const int fd = [] {
    int f = memfd_create("clearcap-fuzz.ccap", MFD_CLOEXEC);
    if (f < 0) {
      std::perror("memfd_create");
      std::abort();
    }
    return f;
  }();
  return fd;
}

bool write_all(int fd, const uint8_t* data, size_t size) {
  if (ftruncate(fd, 0) != 0) return false;
  size_t done = 0;
  while (done < size) {
    ssize_t n = pwrite(fd, data + done, size - done, static_cast<off_t>(done));
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const int fd = memfd();
  if (!write_all(fd, data, size)) std::abort();
  auto reader = clearcap::CaptureReader::open("/proc/self/fd/" + std::to_string(fd));
  if (!reader) return 0;
  clearcap::Event ev;
  uint64_t sum = 0;
  while ((*reader)->next(ev)) sum += clearcap::fuzz::touch_event(ev);
  // The end stays the end: a caller that asks once more gets nothing.
  if ((*reader)->next(ev)) std::abort();
  sum += (*reader)->problems().size() + (*reader)->skipped_bytes() + (*reader)->header().host.size();
  volatile uint64_t keep = sum;
  (void)keep;
  return 0;
}
