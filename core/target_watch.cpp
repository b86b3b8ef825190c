#include "core/target_watch.h"

#include <condition_variable>
#include <map>

#include <fmt/format.h>

#include "core/thread_setup.h"

namespace clearcap {

TargetWatch::TargetWatch(CaptureSession& session, CaptureModule& module, const LibrarySpec& spec,
                         std::chrono::milliseconds every, Log log)
    : session_(session), module_(module), spec_(spec), log_(std::move(log)) {
  thread_ = std::jthread([this, every](std::stop_token st) {
    name_this_thread("cc-targets");
    std::mutex mu;
    std::condition_variable_any cv;
    std::unique_lock lk(mu);
    while (!cv.wait_for(lk, st, every, [] { return false; })) {
      if (st.stop_requested()) return;
      scan();
    }
  });
}

TargetWatch::~TargetWatch() { stop(); }

void TargetWatch::stop() {
  thread_.request_stop();
  if (thread_.joinable()) thread_.join();
}

void TargetWatch::scan() {
  const DiscoveryOptions d = session_.discovery();
  if (d.library) return;  // told its file: nothing else is wanted
  auto found = discover_targets(spec_, d);
  if (!found) return;  // nothing running has the library now: nothing new either
  std::set<std::string> hooked;
  session_.with_control([&] {
    for (const auto& t : module_.targets()) hooked.insert(file_identity(t.path));
  });
  std::map<std::string, const ProbeTarget*> fresh;  // identity -> a target
  for (const auto& t : found->targets) {
    const std::string id = file_identity(t.path);
    if (id.empty() || hooked.count(id) || refused_.count(id)) continue;
    fresh.emplace(id, &t);
  }
  if (fresh.empty()) return;
  auto r = session_.retarget(module_, d);
  std::set<std::string> now_hooked;
  if (r) {
    session_.with_control([&] {
      for (const auto& t : module_.targets()) now_hooked.insert(file_identity(t.path));
    });
  }
  for (const auto& [id, t] : fresh) {
    if (now_hooked.count(id)) {
      attached_later_.fetch_add(1, std::memory_order_relaxed);
      log_(fmt::format("attached to {}, which appeared after start", t->display));
    } else {
      refused_.insert(id);
      not_attached_.fetch_add(1, std::memory_order_relaxed);
      log_(fmt::format("warning: {} appeared after start and could not be hooked{}: its plaintext is not captured",
                       t->display, r ? "" : fmt::format(" ({})", r.error().message)));
    }
  }
}

}  // namespace clearcap
