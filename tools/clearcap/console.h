// Where clearcap's own lines go: the log destination (-l) once the outputs
// exist, else stderr; lines the user must see (ready, errors, --stats, the
// summary) also reach stderr when the log goes elsewhere; every line is also
// streamed to eCaptureQ clients while a server runs.
// Thread: log()/say() from any thread (the configuration API logs its
// changes); attach()/detach() on the command's thread.
#pragma once

#include <atomic>
#include <string>
#include <utility>

#include <fmt/format.h>

namespace clearcap {

class Outputs;
class EcaptureqServer;

class Console {
 public:
  explicit Console(bool debug);
  ~Console();
  bool debug() const { return debug_; }

  void attach_outputs(Outputs* o) { outputs_.store(o, std::memory_order_release); }
  void attach_tap(EcaptureqServer* s) { tap_.store(s, std::memory_order_release); }

  // A log line.
  void log_line(const std::string& line);
  // A line the user must see.
  void say_line(const std::string& line);

  template <typename... Args>
  void log(fmt::format_string<Args...> f, Args&&... args) {
    log_line(fmt::format(f, std::forward<Args>(args)...));
  }
  template <typename... Args>
  void say(fmt::format_string<Args...> f, Args&&... args) {
    say_line(fmt::format(f, std::forward<Args>(args)...));
  }

 private:
  void tap(const std::string& line);
  const bool debug_;
  std::atomic<Outputs*> outputs_{nullptr};
  std::atomic<EcaptureqServer*> tap_{nullptr};
};

}  // namespace clearcap
