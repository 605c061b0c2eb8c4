#!/usr/bin/env bash
# Plots a run's metrics.jsonl (loss and seconds per step) to a PNG with gnuplot (docs/metrics.md).
# Usage: scripts/plot_metrics.sh RUN_DIR [OUT.png]
set -euo pipefail
RUN=${1:?usage: scripts/plot_metrics.sh RUN_DIR [OUT.png]}
PNG=${2:-$RUN/metrics.png}
command -v gnuplot >/dev/null || { echo "gnuplot is needed (apt-get install gnuplot-nox)" >&2; exit 2; }
TSV=$(mktemp)
trap 'rm -f "$TSV"' EXIT
python3 - "$RUN/metrics.jsonl" >"$TSV" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    if line.strip():
        m = json.loads(line)
        print(m["step"], m["loss"], m["seconds"])
PY
gnuplot <<GP
set terminal pngcairo size 900,420 font "sans,10"
set output "$PNG"
set multiplot layout 1,2 title "zoff run: $(basename "$RUN")"
set xlabel "step"; set ylabel "loss (mean of the perturbed forwards)"; set grid
plot "$TSV" using 1:2 with lines lw 1 lc rgb "#9ecae1" title "per step", \
     "$TSV" using 1:2 smooth bezier lw 2 lc rgb "#08519c" title "smoothed"
set ylabel "seconds / step"
plot "$TSV" using 1:3 with lines lc rgb "#31a354" notitle
unset multiplot
GP
echo "wrote $PNG"
