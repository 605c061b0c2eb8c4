#!/usr/bin/env python3
"""Markdown tables (and a PNG, when matplotlib exists) from bench_step/bench_transfer JSON outputs.

Usage: scripts/bench_report.py [--plot out.png] [--title TEXT] result.json [more.json ...] > results.md

Reads Google Benchmark `--benchmark_format=json` (or `--benchmark_out`) files. bench_step cases are
named step/<size>/<optimizer>/<policy>; bench_transfer cases transfer/<dir>/<memory>/MiB:<n>.
Prints, per (optimizer, policy), one row per model size with s/step, GPU MiB (NVML / max
allocated), tok/s, fraction of the transfer bound, and ZO2's published numbers for comparison;
then the skipped/failed cases with their messages, and the transfer table. Counters: docs/bench.md.
"""
import argparse
import json
import math
import sys

# ZO2's published OPT numbers (MeZO, batch 1 x 2048), as the project compares against them: seconds
# per step and NVML GPU MiB with ZO2's offloading, and MeZO without offloading (all on the GPU) s/step.
ZO2_S_PER_STEP = {"opt-1.3b": 0.188, "opt-6.7b": 0.480, "opt-13b": 0.821, "opt-30b": 1.689}
ZO2_GPU_MIB = {"opt-1.3b": 3065, "opt-6.7b": 4819, "opt-13b": 5977, "opt-30b": 8593}
MEZO_S_PER_STEP = {"opt-1.3b": 0.135, "opt-6.7b": 0.333, "opt-13b": 0.624, "opt-30b": 1.387}
OPT_ORDER = ["mezo", "fzoo8", "subzero", "svrg"]
POLICY_ORDER = ["stream-bf16", "stream-bf16-split", "all-resident", "budget", "stream-fp8", "stream-fp8-cpu"]
SIZE_PARAMS_B = {"opt-tiny": 0.0003, "opt-1.3b": 1.3, "opt-6.7b": 6.7, "opt-13b": 13.0, "opt-30b": 30.0}


def load(paths):
    """All benchmark entries and the contexts of the given files."""
    entries, contexts = [], []
    for p in paths:
        # A bench cut short (timeout) leaves a truncated file: report it and go on with the rest.
        try:
            with open(p) as f:
                doc = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            print(f"bench_report: skipping {p}: {e}", file=sys.stderr)
            continue
        if not isinstance(doc, dict) or "benchmarks" not in doc:
            print(f"bench_report: skipping {p}: not a Google Benchmark JSON output (no 'benchmarks' key)",
                  file=sys.stderr)
            continue
        contexts.append(doc.get("context", {}))
        for b in doc["benchmarks"]:
            if b.get("run_type", "iteration") != "iteration":
                continue  # aggregates (mean/median/stddev) of repetitions: we show each repetition
            entries.append(b)
    return entries, contexts


def fmt(x, digits=3):
    """Three significant digits below 1000, thousands separators above; — for missing values."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


def size_key(size):
    return SIZE_PARAMS_B.get(size, float("inf")), size


def order(value, known):
    return (known.index(value) if value in known else len(known), value)


def failed_entry(b):
    """Skipped with an error: benchmark 1.7 writes error_occurred, 1.8 also skipped."""
    return bool(b.get("error_occurred")) or b.get("skipped") not in (None, False, "")


def step_rows(entries):
    """{(optimizer, policy): {size: entry}} for successful step cases; list of failures."""
    groups, failed = {}, []
    for b in entries:
        parts = b["name"].split("/")
        if parts[0] != "step" or len(parts) < 4:
            continue
        size, opt, pol = parts[1], parts[2], parts[3]
        if failed_entry(b):
            failed.append(("/".join(parts[:4]), b.get("error_message") or b.get("skip_message") or ""))
            continue
        groups.setdefault((opt, pol), {})[size] = b
    return groups, failed


def speedup(ref, s):
    return f"{ref / s:.2f}x" if ref and s else "—"


def step_table(opt, pol, by_size):
    """One row per model size. ZO2 and MeZO-without-offload references only for MeZO rows."""
    out = [f"### {opt} / {pol}", "",
           "| model | s/step | GPU MiB (NVML / max alloc) | tok/s | fraction of transfer bound | H2D GB/step "
           "| H2D busy | GEMM floor s | ZO2 s/step | speedup vs ZO2 | ZO2 GPU MiB (NVML) "
           "| MeZO no-offload s/step | speedup vs MeZO no-offload |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for size in sorted(by_size, key=size_key):
        b = by_size[size]
        s = b.get("s_per_step")
        mezo = opt == "mezo"
        zo2 = ZO2_S_PER_STEP.get(size) if mezo else None
        ref = MEZO_S_PER_STEP.get(size) if mezo else None
        used, peak = b.get("gpu_used_MiB"), b.get("peak_alloc_MiB")
        gpu = f"{fmt(used, 4)} / {fmt(peak, 4)}" if used or peak else "—"  # — on a CPU run
        out.append("| " + " | ".join([
            size, fmt(s), gpu, fmt(b.get("tok_per_s")), fmt(b.get("fraction_of_transfer_bound"), 2),
            fmt(b.get("h2d_GB_per_step")), fmt(b.get("h2d_busy"), 2), fmt(b.get("gemm_floor_s")),
            fmt(zo2, 4), speedup(zo2, s), fmt(ZO2_GPU_MIB.get(size) if mezo else None), fmt(ref, 4),
            speedup(ref, s)]) + " |")
    return out


def transfer_table(entries):
    rows = [b for b in entries if b["name"].startswith("transfer/") and not failed_entry(b)]
    if not rows:
        return []
    out = ["## Host-device copies (bench_transfer)", "",
           "| copy | memory | MiB | GB/s | H2D GB/s | D2H GB/s |", "|---|---|---|---|---|---|"]
    for b in rows:
        parts = b["name"].split("/")
        mib = parts[3].split(":")[-1] if len(parts) > 3 else "?"
        out.append(f"| {parts[1]} | {parts[2]} | {mib} | {fmt(b.get('GBps'), 4)} | "
                   f"{fmt(b.get('h2d_GBps'), 4)} | {fmt(b.get('d2h_GBps'), 4)} |")
    return out


def plot(groups, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("bench_report: matplotlib not importable, no plot written", file=sys.stderr)
        return False
    fig, ax = plt.subplots(figsize=(6, 4))
    sizes = sorted(ZO2_S_PER_STEP, key=size_key)
    ax.plot([SIZE_PARAMS_B[s] for s in sizes], [ZO2_S_PER_STEP[s] for s in sizes], "k--o", label="ZO2 (offload)")
    ax.plot([SIZE_PARAMS_B[s] for s in sizes], [MEZO_S_PER_STEP[s] for s in sizes], "k:s",
            label="MeZO, no offload (ZO2 paper)")
    for (opt, pol), by_size in sorted(groups.items()):
        pts = sorted((SIZE_PARAMS_B[s], b["s_per_step"]) for s, b in by_size.items()
                     if s in SIZE_PARAMS_B and s != "opt-tiny" and "s_per_step" in b)
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "-o", label=f"zoff {opt}/{pol}")
    ax.set_xlabel("OPT parameters (billions)")
    ax.set_ylabel("seconds per step (batch 1 x 2048)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json", nargs="+", help="Google Benchmark JSON outputs of bench_step / bench_transfer")
    ap.add_argument("--plot", help="write a PNG of s/step vs model size (needs matplotlib)")
    ap.add_argument("--title", default="zoff throughput", help="heading of the report")
    args = ap.parse_args()
    entries, contexts = load(args.json)
    groups, failed = step_rows(entries)
    out = [f"# {args.title}", ""]
    for c in contexts:
        keys = ["date", "host_name", "zoff_gpu", "zoff_device", "zoff_h2d_pinned_GBps", "device", "executable"]
        bits = [f"{k}: {c[k]}" for k in keys if k in c]
        if bits:
            out.append("- " + "; ".join(bits))
    out.append("")
    out.append("ZO2 columns (MeZO rows only): ZO2's published OPT numbers (batch 1 x 2048) with its offloading, "
               "and MeZO without offloading; speedup = their s/step / zoff s/step. GPU MiB: driver-reported use "
               "(NVML-like) / LibTorch max allocated. Counters: docs/bench.md.")
    out.append("")
    for (opt, pol) in sorted(groups, key=lambda k: (order(k[0], OPT_ORDER), order(k[1], POLICY_ORDER))):
        out += step_table(opt, pol, groups[(opt, pol)]) + [""]
    failed += [(b["name"], b.get("error_message") or b.get("skip_message") or "") for b in entries
               if not b["name"].startswith("step/") and failed_entry(b)]
    if failed:
        out += ["### Skipped or failed cases", "", "| case | message |", "|---|---|"]
        out += [f"| {n} | {m.replace('|', '/').replace(chr(10), ' ')} |" for n, m in failed] + [""]
    out += transfer_table(entries)
    print("\n".join(out).rstrip() + "\n")
    if args.plot:
        if plot(groups, args.plot):
            print(f"bench_report: wrote {args.plot}", file=sys.stderr)


if __name__ == "__main__":
    main()
