// Timeline analysis and chrome://tracing JSON for executed plans.
#include "offload/timeline.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <utility>

#include <nlohmann/json.hpp>

#include "zoff/error.h"

namespace zoff {

double timeline_span_ms(const std::vector<OpTiming>& t) {
  double s = 0;
  for (const OpTiming& o : t) s = std::max(s, o.end_ms);
  return s;
}

double busy_fraction(const std::vector<OpTiming>& t, OpKind kind) {
  const double span = timeline_span_ms(t);
  if (span <= 0) return 0;
  std::vector<std::pair<double, double>> iv;
  for (const OpTiming& o : t)
    if (o.kind == kind) iv.emplace_back(std::max(0.0, o.start_ms), std::max(0.0, o.end_ms));
  std::sort(iv.begin(), iv.end());
  double busy = 0, cur_s = 0, cur_e = -1;
  for (const auto& [s, e] : iv) {
    if (s > cur_e) {
      if (cur_e > cur_s) busy += cur_e - cur_s;
      cur_s = s;
      cur_e = e;
    } else {
      cur_e = std::max(cur_e, e);
    }
  }
  if (cur_e > cur_s) busy += cur_e - cur_s;
  return busy / span;
}

std::string chrome_trace_json(const std::vector<OpTiming>& t) {
  nlohmann::json events = nlohmann::json::array();
  for (int s = 0; s < kNumStreams; ++s)
    events.push_back({{"name", "thread_name"}, {"ph", "M"}, {"pid", 0}, {"tid", s},
                      {"args", {{"name", stream_name(StreamId(s))}}}});
  for (const OpTiming& o : t) {
    std::string name = std::string(op_kind_name(o.kind)) + " b" + std::to_string(o.block);
    if (o.slot >= 0) name += " s" + std::to_string(o.slot);
    events.push_back({{"name", name},
                      {"cat", op_kind_name(o.kind)},
                      {"ph", "X"},
                      {"pid", 0},
                      {"tid", int(o.stream)},
                      {"ts", o.start_ms * 1e3},
                      {"dur", std::max(0.0, o.end_ms - o.start_ms) * 1e3},
                      {"args", {{"op", o.op}, {"block", o.block}, {"slot", o.slot}}}});
  }
  nlohmann::json root = {{"traceEvents", events}, {"displayTimeUnit", "ms"}};
  return root.dump(1);
}

void write_chrome_trace(const std::vector<OpTiming>& t, const std::string& path) {
  std::ofstream f(path);
  ZOFF_INPUT_CHECK(f.good(), "trace file ", path, ": cannot open for writing (", std::strerror(errno), ")");
  f << chrome_trace_json(t) << "\n";
  f.close();
  ZOFF_INPUT_CHECK(!f.fail(), "trace file ", path, ": write failed");
}

}  // namespace zoff
