#include "control/config_body.h"

#include <algorithm>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <simdjson.h>

namespace clearcap {

namespace {

// PID_MAX_LIMIT: no process id is larger.
constexpr uint64_t kMaxPid = 4194304;

using simdjson::dom::element;

tl::unexpected<ApiError> invalid(std::string_view field, std::string_view why) {
  return tl::unexpected(ApiError{ApiCode::kValidationFailed, fmt::format("field '{}': {}", field, why)});
}

tl::expected<uint64_t, ApiError> get_uint(std::string_view field, element v, uint64_t max) {
  uint64_t n = 0;
  if (v.is_uint64()) {
    n = v.get_uint64().value_unsafe();
  } else if (v.is_int64()) {
    return invalid(field, fmt::format("{} is negative", v.get_int64().value_unsafe()));
  } else {
    return invalid(field, "expected a non-negative integer");
  }
  if (n > max) return invalid(field, fmt::format("{} is larger than {}", n, max));
  return n;
}

// Every string field is a path, an address, a mode or a filter: none holds
// a NUL (which would cut a path short where the kernel reads it) or another
// control character.
tl::expected<std::string, ApiError> get_string(std::string_view field, element v) {
  if (!v.is_string()) return invalid(field, "expected a string");
  std::string s(v.get_string().value_unsafe());
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f)
      return invalid(field, c == 0 ? "holds a NUL byte (a control character)" : "holds a control character (newline, tab, escape...)");
  return s;
}

tl::expected<std::vector<uint64_t>, ApiError> get_uint_array(std::string_view field, element v, uint64_t max) {
  if (!v.is_array()) return invalid(field, "expected an array of non-negative integers");
  std::vector<uint64_t> out;
  size_t i = 0;
  simdjson::dom::array arr;
  if (v.get(arr)) return invalid(field, "expected an array of non-negative integers");
  for (element item : arr) {
    auto n = get_uint(fmt::format("{}[{}]", field, i++), item, max);
    if (!n) return tl::unexpected(n.error());
    out.push_back(*n);
  }
  return out;
}

}  // namespace

tl::expected<ConfigPatch, ApiError> parse_config_body(std::string_view body, std::string_view path_field,
                                                      const std::vector<std::string>& modes) {
  simdjson::dom::parser parser;
  simdjson::padded_string padded(body);
  element doc;
  if (auto err = parser.parse(padded).get(doc))
    return tl::unexpected(
        ApiError{ApiCode::kDecodeFailed, fmt::format("the body is not valid JSON: {}", simdjson::error_message(err))});
  if (!doc.is_object())
    return tl::unexpected(ApiError{ApiCode::kDecodeFailed, "the body must be one JSON object"});

  ConfigPatch p;
  std::set<std::string_view> seen;
  std::set<uint64_t> pids, uids;
  bool pid_given = false, uid_given = false;
  simdjson::dom::object obj;
  if (doc.get(obj)) return tl::unexpected(ApiError{ApiCode::kDecodeFailed, "the body must be one JSON object"});
  for (auto field : obj) {
    const std::string_view key = field.key;
    const element v = field.value;
    if (!seen.insert(key).second) return invalid(key, "given twice");
    auto take_string = [&](std::optional<std::string>& dst) -> tl::expected<void, ApiError> {
      auto s = get_string(key, v);
      if (!s) return tl::unexpected(s.error());
      dst = std::move(*s);
      return {};
    };
    tl::expected<void, ApiError> r;
    if (key == "pid" || key == "uid") {
      auto n = get_uint(key, v, key == "pid" ? kMaxPid : UINT32_MAX);
      if (!n) return tl::unexpected(n.error());
      if (*n != 0) (key == "pid" ? pids : uids).insert(*n);
      (key == "pid" ? pid_given : uid_given) = true;
    } else if (key == "pids" || key == "uids") {
      auto a = get_uint_array(key, v, key == "pids" ? kMaxPid : UINT32_MAX);
      if (!a) return tl::unexpected(a.error());
      for (uint64_t n : *a)
        if (n != 0) (key == "pids" ? pids : uids).insert(n);
      (key == "pids" ? pid_given : uid_given) = true;
    } else if (key == "is_hex") {
      if (!v.is_bool()) return invalid(key, "expected true or false");
      p.hex = v.get_bool().value_unsafe();
    } else if (key == "truncate_size") {
      auto n = get_uint(key, v, UINT32_MAX);
      if (!n) return tl::unexpected(n.error());
      p.truncate = *n;
    } else if (key == "per_cpu_map_size") {
      auto n = get_uint(key, v, UINT32_MAX);
      if (!n) return tl::unexpected(n.error());
      p.per_cpu_map_size = *n;
    } else if (key == "cgroup_path") {
      r = take_string(p.cgroup_path);
    } else if (key == path_field) {
      r = take_string(p.library);
    } else if (key == "capturemode" || key == "capture_mode") {
      if (p.mode) return invalid(key, "capturemode and capture_mode are the same setting: give one");
      r = take_string(p.mode);
      if (r) {
        const std::string m = *p.mode == "key" ? "keylog" : *p.mode == "pcapng" ? "pcap" : *p.mode;
        if (std::find(modes.begin(), modes.end(), m) == modes.end())
          return invalid(key, fmt::format("'{}' is not a mode of this module; use {}", *p.mode, fmt::join(modes, ", ")));
      }
    } else if (key == "logger_addr") {
      r = take_string(p.logger_addr);
    } else if (key == "event_collector_addr") {
      r = take_string(p.event_collector_addr);
    } else if (key == "ecapture_q") {
      r = take_string(p.ecapture_q);
    } else if (key == "keylogfile") {
      r = take_string(p.keylogfile);
    } else if (key == "pcapfile") {
      r = take_string(p.pcapfile);
    } else if (key == "ifname") {
      r = take_string(p.ifname);
    } else if (key == "pcapfilter") {
      r = take_string(p.pcapfilter);
    } else {
      p.ignored.emplace_back(key);
    }
    if (!r) return tl::unexpected(r.error());
  }
  if (uids.size() > 1)
    return invalid("uids", "clearcap filters on one user at a time; give one uid (or 0 for all)");
  if (pid_given) p.pids = std::vector<int>(pids.begin(), pids.end());
  if (uid_given) p.uid = uids.empty() ? 0u : static_cast<uint32_t>(*uids.begin());
  return p;
}

}  // namespace clearcap
