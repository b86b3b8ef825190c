// The one RAII owner of a generated libbpf skeleton (bpftool gen skeleton):
// open -> configure (before_load: share the RingSet's maps, set .rodata,
// resize maps) -> load -> destroy. Every probe family's skeleton is owned
// through it; a module names its skeleton's three functions once:
//   using GnutlsSkel = Skeleton<gnutls_bpf, gnutls_bpf__open, gnutls_bpf__load, gnutls_bpf__destroy>;
// Thread: not thread-safe; owned by the thread that runs the capture.
#pragma once

#include <cerrno>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <bpf/libbpf.h>
#include <fmt/format.h>

#include "core/result.h"

namespace clearcap {

template <class S, S* (*Open)(), int (*Load)(S*), void (*Destroy)(S*)>
class Skeleton {
 public:
  // `name` is for messages ("the gnutls BPF programs").
  static Result<std::unique_ptr<Skeleton>> open_and_load(const std::string& name,
                                                         const std::function<Result<void>(S*)>& before_load) {
    std::unique_ptr<Skeleton> self(new Skeleton());
    self->skel_ = Open();
    if (!self->skel_) {
      int err = errno;
      return make_error(fmt::format("cannot open the {} BPF object: {}", name, std::strerror(err)), err);
    }
    if (before_load)
      if (auto r = before_load(self->skel_); !r) return tl::unexpected(r.error());
    if (int err = Load(self->skel_))
      return make_error(fmt::format("cannot load the {} BPF programs: {} (run with --debug for the verifier log)",
                                    name, std::strerror(-err)),
                        -err);
    return self;
  }
  ~Skeleton() {
    if (skel_) Destroy(skel_);
  }
  Skeleton(const Skeleton&) = delete;
  Skeleton& operator=(const Skeleton&) = delete;

  S* raw() const { return skel_; }

  // {name, fd} of every loaded program (program-time statistics).
  std::vector<std::pair<std::string, int>> programs() const {
    std::vector<std::pair<std::string, int>> out;
    bpf_program* p = nullptr;
    bpf_object__for_each_program(p, skel_->obj) {
      if (bpf_program__fd(p) >= 0) out.emplace_back(bpf_program__name(p), bpf_program__fd(p));
    }
    return out;
  }

 private:
  Skeleton() = default;
  S* skel_ = nullptr;
};

}  // namespace clearcap
