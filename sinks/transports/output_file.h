// Opening the files clearcap writes plaintext and keys into, safely.
//
// Those files are written as root, often into directories other users can
// write to (/tmp, a shared log directory). So a path is never trusted:
//  - the last component is never followed when it is a symbolic link
//    (O_NOFOLLOW), whatever fs.protected_symlinks says;
//  - a new file is created exclusively (O_EXCL) with the requested mode,
//    set exactly (fchmod, so the umask cannot widen or narrow it);
//  - an existing file must belong to the effective user: a file planted by
//    someone else (who could read what is appended, because chmod keeps the
//    owner) is refused, and so is a regular file with more than one link (a
//    hard link planted to a file of ours elsewhere). Its mode is narrowed to
//    the requested one, never widened;
//  - devices and FIFOs owned by the effective user (/dev/null, a pipe the
//    user made) are opened as they are; a FIFO nobody reads is refused
//    rather than waited for.
//
// Thread: free functions, no shared state.
#pragma once

#include <sys/types.h>

#include <span>
#include <string>

#include "core/result.h"

namespace clearcap {

// Mode of every file holding plaintext or keys unless --file-mode says otherwise.
inline constexpr mode_t kPrivateFileMode = 0600;

enum class OpenFile {
  kAppend,   // keep what the file holds
  kReplace,  // empty an existing file (a new capture starts)
};

// Returns an fd opened for writing (O_CLOEXEC | O_APPEND: every write lands
// at the end, also after a failed write was truncated away or the file was
// truncated by logrotate's copytruncate). Errors name the path, say why and
// what to do.
Result<int> open_output_file(const std::string& path, OpenFile how, mode_t mode);

// "0600" -> 0600. Accepts 3 or 4 octal digits, at most 0777 (no setuid,
// setgid or sticky bits), and the owner must keep read and write.
Result<mode_t> parse_file_mode(std::string_view text);

// true if `path` names the same file (device and inode) as one of `others`
// (paths that do not exist match nothing).
bool same_file_as_any(const std::string& path, std::span<const std::string> others);

}  // namespace clearcap
