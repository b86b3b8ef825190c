#include "tools/clearcap/outputs.h"

#include <unistd.h>

#include <fmt/format.h>

#include "sinks/fd_writer.h"
#include "sinks/json_encoder.h"
#include "sinks/text_encoder.h"

namespace clearcap {

Result<std::unique_ptr<EventSink>> make_event_output(const OutputOptions& opts) {
  FormatOptions fopts{opts.hex, static_cast<size_t>(opts.tsize)};
  std::unique_ptr<Encoder> encoder;
  if (opts.format == "json") encoder = std::make_unique<JsonEncoder>(fopts);
  else if (opts.format == "text") encoder = std::make_unique<TextEncoder>(fopts);
  else return make_error(fmt::format("--format {}: unknown format; use text or json", opts.format), EINVAL);
  return std::unique_ptr<EventSink>(std::make_unique<FdSink>(std::move(encoder), STDOUT_FILENO, "stdout"));
}

}  // namespace clearcap
