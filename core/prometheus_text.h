// Prometheus text exposition format 0.0.4 for GET /metrics: one HELP and
// TYPE line per family, then its samples. Label values and help texts are
// escaped as the format requires, so any output name or path is safe.
// Thread: one owner per instance.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace clearcap {

class PrometheusText {
 public:
  using Label = std::pair<std::string_view, std::string_view>;

  // Starts a family; `type` is "counter" or "gauge". Counter names end in
  // _total by convention.
  void family(std::string_view name, std::string_view type, std::string_view help);
  void sample(std::string_view name, std::initializer_list<Label> labels, double value);
  void sample(std::string_view name, std::initializer_list<Label> labels, uint64_t value);
  void sample(std::string_view name, uint64_t value) { sample(name, {}, value); }

  const std::string& text() const { return out_; }
  static constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

 private:
  void labels(std::initializer_list<Label> labels);
  std::string out_;
};

// Label values: backslash, double quote and newline are escaped.
std::string prometheus_escape_label(std::string_view v);

}  // namespace clearcap
