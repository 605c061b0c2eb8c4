// Step timelines: per-op start/end times, busy fractions and chrome://tracing output.
#pragma once

#include <string>
#include <vector>

#include "offload/plan.h"

namespace zoff {

// One op of one step as it ran: ms since the step-start mark (device clock on CUDA, steady_clock
// on host devices). Starts are taken after the op's waits, so they show real start times.
struct OpTiming {
  int op = 0;  // index in the plan
  OpKind kind = OpKind::Compute;
  int block = 0;
  int slot = -1;
  StreamId stream = StreamId::Compute;
  double start_ms = 0;
  double end_ms = 0;
};

// The step's span: the latest end (0 for an empty timeline).
double timeline_span_ms(const std::vector<OpTiming>& t);
// Length of the union of the intervals of ops of `kind`, divided by the span (0 when the span is 0).
double busy_fraction(const std::vector<OpTiming>& t, OpKind kind);
// {"traceEvents": [...]} with one complete event ("ph": "X") per op, one track per stream.
std::string chrome_trace_json(const std::vector<OpTiming>& t);
// Writes chrome_trace_json to path; zoff::InputError naming the path when it cannot be written.
void write_chrome_trace(const std::vector<OpTiming>& t, const std::string& path);

}  // namespace zoff
