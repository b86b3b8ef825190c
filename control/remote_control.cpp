#include "control/remote_control.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/json_text.h"
#include "core/processor.h"
#include "core/prometheus_text.h"
#include "core/capture_module.h"
#include "core/capture_session.h"
#include "modules/registry.h"

namespace clearcap {

namespace {

ApiReply reply_for(std::string_view module, ApiCode code, std::string_view msg) {
  static constexpr unsigned kStatus[] = {200, 400, 500, 404, 400, 400, 503};
  const int c = static_cast<int>(code);
  return ApiReply{kStatus[c], "application/json", api_body(c, module, msg)};
}

std::string json_string_or_null(const std::optional<std::string>& s) {
  return s ? fmt::format("\"{}\"", json_escape_text(*s)) : "null";
}

bool subset(const std::vector<int>& a, const std::vector<int>& b) {
  return std::all_of(a.begin(), a.end(), [&](int x) { return std::find(b.begin(), b.end(), x) != b.end(); });
}

}  // namespace

std::string json_escape_text(std::string_view s) { return json_escape(s); }

RemoteControl::RemoteControl(const ModuleInfo& module, CaptureSession& session, CaptureModule& capture,
                             LiveConfig initial, Hooks hooks)
    : module_(module),
      session_(session),
      capture_(capture),
      hooks_(std::move(hooks)),
      cfg_(std::move(initial)) {}

bool RemoteControl::is_module_path(std::string_view p) const {
  if (p.size() < 2 || p[0] != '/') return false;
  p.remove_prefix(1);
  if (p == module_.name) return true;
  for (const auto& a : module_.aliases)
    if (p == a) return true;
  return false;
}

LiveConfig RemoteControl::config() const {
  std::lock_guard lock(state_mu_);
  return cfg_;
}

ApiReply RemoteControl::handle(const ApiRequest& req) {
  std::string_view path = req.target;
  path = path.substr(0, path.find('?'));
  if (path.size() > 1 && path.ends_with('/')) path.remove_suffix(1);
  if (path == "/status" || path == "/metrics") {
    if (req.method != "GET" && req.method != "HEAD")
      return reply_for(module_.name, ApiCode::kInvalidRequest, fmt::format("{} is read-only: use GET", path));
    if (path == "/status") return status();
    return ApiReply{200, std::string(PrometheusText::kContentType), hooks_.metrics()};
  }
  if (is_module_path(path)) {
    if (req.method != "POST")
      return reply_for(module_.name, ApiCode::kInvalidRequest,
                   fmt::format("{} takes POST with a JSON body (see GET /status for the configuration in force)", path));
    return post_module(req.body);
  }
  // Another module's path: the module of a run is fixed.
  std::string_view other;
  if (path.size() > 1) {
    std::string_view name = path.substr(1);
    if (const ModuleInfo* m = find_module(name)) other = m->name;
    for (std::string_view p : planned_modules())
      if (p == name) other = p;
  }
  if (!other.empty())
    return reply_for(module_.name, ApiCode::kInvalidRequest,
                 fmt::format("this clearcap runs the {} module; it cannot switch to {} at run time (restart it as "
                             "`clearcap {}`); the {} capture keeps running unchanged",
                             module_.name, other, other, module_.name));
  std::string paths = "/" + module_.name;
  if (!module_.aliases.empty()) {
    std::vector<std::string> al;
    for (const auto& a : module_.aliases) al.push_back("/" + a);
    paths += fmt::format(" ({})", fmt::join(al, ", "));
  }
  return reply_for(module_.name, ApiCode::kNotFound,
               fmt::format("not found: {}; endpoints: POST {}, GET /status, GET /metrics", path, paths));
}

std::optional<ApiError> RemoteControl::resolve(const ConfigPatch& p, LiveConfig& next) const {
  auto invalid = [](std::string_view field, std::string msg) {
    return ApiError{ApiCode::kValidationFailed, fmt::format("field '{}': {}", field, msg)};
  };
  if (p.mode) {
    const std::string mode = *p.mode == "key" ? "keylog" : *p.mode == "pcapng" ? "pcap" : *p.mode;
    if (mode != next.mode)
      return invalid("capturemode", fmt::format("this capture runs in {} mode; switching to {} at run time is not "
                                                "supported (restart clearcap with -m {})",
                                                next.mode, mode, mode));
  }
  if (p.per_cpu_map_size && *p.per_cpu_map_size != 0 && *p.per_cpu_map_size != next.ring_bytes)
    return invalid("per_cpu_map_size",
                   fmt::format("the rings ({} bytes per CPU) cannot be resized while capturing without losing what "
                               "they hold; restart clearcap with --mapsize",
                               next.ring_bytes));
  struct Output {
    const char* field;
    const std::optional<std::string>& value;
    std::string current;
  };
  for (const Output& o : {Output{"logger_addr", p.logger_addr, ""}, Output{"event_collector_addr", p.event_collector_addr, ""},
                          Output{"ecapture_q", p.ecapture_q, next.ecapture_q}}) {
    if (o.value && !o.value->empty() && *o.value != o.current)
      return invalid(o.field, "outputs cannot be changed at run time (they stay open so that nothing is lost); "
                              "restart clearcap with the new address");
  }
  if (p.pids) {
    for (int pid : *p.pids) {
      struct stat st;
      if (stat(fmt::format("/proc/{}", pid).c_str(), &st) != 0)
        return invalid("pid", fmt::format("process {} is not running", pid));
    }
    next.pids = *p.pids;
  }
  if (p.uid) next.uid = *p.uid;
  if (p.cgroup_path) {
    if (p.cgroup_path->empty()) {
      next.cgroup = Cgroup{};
    } else {
      auto c = resolve_cgroup(*p.cgroup_path);
      if (!c) return invalid("cgroup_path", c.error().message);
      next.cgroup = *c;
    }
  }
  if (p.hex) next.hex = *p.hex;
  if (p.truncate) next.truncate = *p.truncate;
  if (p.library) {
    if (p.library->empty()) {
      next.library.reset();
    } else {
      auto t = inspect_target(*module_.library, *p.library);
      if (!t) return invalid(module_.api_path_field, t.error().message);
      next.library = *p.library;
    }
  }
  return std::nullopt;
}

ApiReply RemoteControl::post_module(const std::string& body) {
  auto patch = parse_config_body(body, module_.api_path_field, module_.modes);
  if (!patch) return reply_for(module_.name, patch.error().code, patch.error().message);
  std::unique_lock apply(apply_mu_, std::try_to_lock);
  if (!apply.owns_lock())
    return reply_for(module_.name, ApiCode::kBusy, "busy: another configuration change is being applied; try again");

  const LiveConfig cur = config();
  LiveConfig next = cur;
  if (auto err = resolve(*patch, next)) return reply_for(module_.name, err->code, err->message);

  // Probes attached only in some processes cannot see a process outside
  // them: such a pid change re-attaches, like a new library does.
  const bool new_library = next.library != cur.library;
  const bool pids_outside_probes =
      !cur.probe_pids.empty() && next.pids != cur.pids && (next.pids.empty() || !subset(next.pids, cur.probe_pids));
  std::vector<std::string> done;
  if (new_library || pids_outside_probes) {
    DiscoveryOptions d;
    d.library = next.library;
    d.pids = next.pids;
    // While the filter still names the old pids, widen it to both sets so
    // the new processes are seen as soon as their probes are in.
    if (auto r = session_.retarget(capture_, d); !r)
      return reply_for(module_.name, ApiCode::kValidationFailed, fmt::format("cannot attach to the new targets: {}; nothing changed",
                                                           r.error().message));
    next.probe_pids = next.pids;
    next.targets.clear();
    for (const auto& t : capture_.targets()) next.targets.push_back(t.display);
    next.uprobes = capture_.uprobes();
    done.push_back(fmt::format("re-attached {} probes to {}", next.uprobes, fmt::join(next.targets, ", ")));
  }
  if (next.pids != cur.pids || next.uid != cur.uid || next.cgroup.id != cur.cgroup.id) {
    if (auto r = session_.set_filter(next.pids, next.uid, next.cgroup); !r)
      return reply_for(module_.name, ApiCode::kInternal, fmt::format("cannot update the BPF filters: {}", r.error().message));
    done.push_back(fmt::format("filters: pids [{}], uid {}, cgroup {}", fmt::join(next.pids, ","), next.uid,
                               next.cgroup.path.empty() ? "any" : next.cgroup.path + " and below"));
  }
  if (next.hex != cur.hex || next.truncate != cur.truncate) {
    session_.set_format(FormatOptions{next.hex, static_cast<size_t>(next.truncate)});
    done.push_back(fmt::format("output: hex {}, truncate {}", next.hex, next.truncate));
  }
  {
    std::lock_guard lock(state_mu_);
    cfg_ = next;
  }
  std::string msg = "RespOK";
  if (!patch->ignored.empty()) msg += fmt::format(" (ignored fields: {})", fmt::join(patch->ignored, ", "));
  if (hooks_.log)
    hooks_.log(fmt::format("config API: {}", done.empty() ? std::string("no change") : fmt::format("{}", fmt::join(done, "; "))));
  return reply_for(module_.name, ApiCode::kOk, msg);
}

ApiReply RemoteControl::status() const {
  const LiveConfig c = config();
  std::vector<std::string> targets;
  for (const auto& t : c.targets) targets.push_back(fmt::format("\"{}\"", json_escape_text(t)));
  const double uptime = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  std::string body = fmt::format(
      R"({{"code":0,"module_type":"{}","msg":"RespOK","data":{{"module":"{}","uptime_seconds":{:.3f},)"
      R"("config":{{"pids":[{}],"uid":{},"cgroup_path":"{}","is_hex":{},"truncate_size":{},"{}":{},)"
      R"("capturemode":"{}","per_cpu_map_size":{},"ecapture_q":"{}"}},"probes":{{"targets":[{}],"uprobes":{},)"
      R"("pids":[{}]}},"counters":{}}}}})",
      module_.name, module_.name, uptime, fmt::join(c.pids, ","), c.uid, json_escape_text(c.cgroup.path), c.hex,
      c.truncate, module_.api_path_field, json_string_or_null(c.library), c.mode, c.ring_bytes, json_escape_text(c.ecapture_q), fmt::join(targets, ","),
      c.uprobes, fmt::join(c.probe_pids, ","), hooks_.counters_json ? hooks_.counters_json() : "{}");
  return ApiReply{200, "application/json", std::move(body)};
}

}  // namespace clearcap
