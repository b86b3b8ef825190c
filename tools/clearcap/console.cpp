#include "tools/clearcap/console.h"

#include <bpf/libbpf.h>

#include <cstdio>

#include "sinks/ecaptureq/ecaptureq_server.h"
#include "sinks/transports/outputs.h"

namespace clearcap {

namespace {

// libbpf's print callback has no user pointer: the one console of the
// process, for --debug only.
std::atomic<Console*> g_libbpf_console{nullptr};

int libbpf_log(enum libbpf_print_level, const char* format, va_list args) {
  // Without --debug nothing: libbpf's warnings are folded into our own errors.
  Console* c = g_libbpf_console.load(std::memory_order_acquire);
  if (!c || !c->debug()) return 0;
  return std::vfprintf(stderr, format, args);
}

}  // namespace

Console::Console(bool debug) : debug_(debug) {
  g_libbpf_console.store(this, std::memory_order_release);
  libbpf_set_print(libbpf_log);
}

Console::~Console() { g_libbpf_console.store(nullptr, std::memory_order_release); }

void Console::tap(const std::string& line) {
  if (EcaptureqServer* t = tap_.load(std::memory_order_acquire)) t->post_log("clearcap: " + line);
}

void Console::log_line(const std::string& line) {
  if (Outputs* o = outputs_.load(std::memory_order_acquire)) o->log(line);
  else fmt::print(stderr, "clearcap: {}\n", line);
  tap(line);
}

void Console::say_line(const std::string& line) {
  if (Outputs* o = outputs_.load(std::memory_order_acquire)) o->console(line);
  else fmt::print(stderr, "clearcap: {}\n", line);
  tap(line);
}

}  // namespace clearcap
