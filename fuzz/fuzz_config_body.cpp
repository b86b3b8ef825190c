// A configuration API body (POST /<module>, docs/remote.md) through
// parse_config_body, with the tls module's library field and modes (the
// defaults) as RemoteControl passes them.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "control/config_body.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto patch = clearcap::parse_config_body(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!patch) {
    // Every refusal is a decode (4) or validation (5) error with a message.
    const auto code = patch.error().code;
    if ((code != clearcap::ApiCode::kDecodeFailed && code != clearcap::ApiCode::kValidationFailed) ||
        patch.error().message.empty())
      std::abort();
    return 0;
  }
  volatile size_t sum = patch->ignored.size() + (patch->pids ? patch->pids->size() : 0) +
                        (patch->library ? patch->library->size() : 0) + (patch->mode ? patch->mode->size() : 0);
  (void)sum;
  return 0;
}
