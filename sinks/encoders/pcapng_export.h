// pcapng export (see pcapng_export.cpp for how TCP is synthesized).
#pragma once

#include <memory>
#include <string>

#include "sinks/encoders/exporters.h"

namespace clearcap {

std::unique_ptr<Exporter> make_pcapng_exporter(std::unique_ptr<OutFile> out, const std::string& version);
std::unique_ptr<Exporter> make_har_exporter(std::unique_ptr<OutFile> out, const std::string& version);

}  // namespace clearcap
