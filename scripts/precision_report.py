#!/usr/bin/env python3
"""bench_precision JSON (Google Benchmark --benchmark_format=json) -> the markdown tables of docs/precision.md.

Usage: scripts/precision_report.py precision.json [more.json ...] > tables.md
Several files are merged (later files win for the same case), so a run split by
--benchmark_filter can be reported as one.
"""
import json
import math
import re
import sys

DTYPES = ["fp32", "bf16", "fp16"]
TRANSFERS = ["same", "bf16", "fp8"]
COMPUTES = ["bf16", "fp16", "fp32"]


def die(msg):
    sys.stderr.write("precision_report.py: " + msg + "\n")
    sys.exit(2)


def load(paths):
    cases, context = {}, None
    for path in paths:
        try:
            with open(path) as f:
                doc = json.load(f)
        except (OSError, ValueError) as e:
            die(f"{path}: not a readable JSON file ({e})")
        if "benchmarks" not in doc:
            die(f"{path}: no 'benchmarks' array (was it written with --benchmark_format=json?)")
        context = context or doc.get("context", {})
        for b in doc["benchmarks"]:
            name = re.sub(r"/iterations:\d+.*$", "", b.get("run_name", b.get("name", "")))
            if not name.startswith("precision/"):
                continue
            cases[name] = b
    if not cases:
        die("no precision/* cases in " + ", ".join(paths))
    return cases, context or {}


def parse(name):
    """precision/<storage>/<transfer|resident>/<compute>[/lrxF][/nosr][/seed:S] -> fields."""
    parts = name.split("/")[1:]
    d = {"storage": parts[0], "transfer": parts[1], "compute": parts[2], "sr": True, "seed": None, "lr_scale": 1.0}
    for p in parts[3:]:
        if p == "nosr":
            d["sr"] = False
        elif p.startswith("seed:"):
            d["seed"] = int(p[5:])
        elif p.startswith("lrx"):
            d["lr_scale"] = float(p[3:])
    return d


def base_key(storage, transfer, compute, sr=True):
    return f"precision/{storage}/{transfer}/{compute}" + ("" if sr else "/nosr")


def fmt_bytes(b):
    if b >= 1 << 20:
        return f"{b / (1 << 20):.2f} MiB"
    if b >= 1 << 10:
        return f"{b / (1 << 10):.1f} KiB"
    return f"{int(b)} B"


def seeds_of(cases, key, field="final_loss"):
    """`field` of one case over all its seeds (the base case plus every /seed:S variant)."""
    out = []
    for name, b in cases.items():
        if (name == key or name.startswith(key + "/seed:")) and not b.get("error_occurred"):
            out.append(b[field])
    return out


def stats(xs):
    m = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else float("nan")
    return m, sd


def main(argv):
    if len(argv) < 2:
        die("usage: precision_report.py precision.json [more.json ...]")
    cases, ctx = load(argv[1:])
    ref = cases.get(base_key("fp32", "same", "fp32"))
    if ref is None or ref.get("error_occurred"):
        die("the fp32 reference case precision/fp32/same/fp32 is missing or failed")
    teacher, start, ref_final = ref["teacher_loss"], ref["initial_loss"], ref["final_loss"]
    ref_bytes = ref["bytes_h2d_per_step"]
    ref_spread = seeds_of(cases, base_key("fp32", "same", "fp32"))
    sd_ref = stats(ref_spread)[1] if len(ref_spread) > 1 else float("nan")
    out = []
    w = out.append
    m = re.search(r"device=(\w+)", ref.get("label", ""))
    device = m.group(1) if m else "cpu"
    w(f"Machine: {ctx.get('host_name', '?')}, {ctx.get('num_cpus', '?')} CPUs, date {ctx.get('date', '?')}; "
      f"{int(ref['steps'])} MeZO steps at lr {ref.get('lr', float('nan')):.0e}; device: {device}.\n")
    w(f"Teacher loss **{teacher:.4f}** (a landmark, not a floor: Note [Teacher-student task]), student start (fp32) **{start:.4f}**. "
      f"fp32 everywhere ends at **{ref_final:.4f}** (gap closed "
      f"{100 * (start - ref_final) / (start - teacher):.1f}%); its seed-to-seed std is {sd_ref:.4f} "
      f"over {len(ref_spread)} seeds.\n")
    w("Δ = final loss − the fp32 run's (same seed); σ-units divide Δ by that std. Gap closed = "
      "(fp32 start − final) / (fp32 start − teacher); agree = fraction of held-out positions where the "
      "student's greedy token is the teacher's (start: "
      f"{ref.get('initial_agreement', float('nan')):.3f}). H2D/D2H = bytes of the streamed blocks per step "
      "(embeddings and head stay resident); ×fp32 = H2D relative to the fp32 master moved as is.\n")
    w("| storage | transfer | compute | update site | start | final | Δ | Δ/σ | gap closed | agree | H2D/step | ×fp32 | D2H/step | s |")
    w("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    notes = []
    for s in DTYPES:
        for t in TRANSFERS:
            for c in COMPUTES:
                key = base_key(s, t, c)
                b = cases.get(key)
                if b is None:
                    w(f"| {s} | {t} | {c} | not run | | | | | | | | | | |")
                    continue
                if b.get("error_occurred"):
                    w(f"| {s} | {t} | {c} | not run: {b.get('error_message', '?')[:90]} | | | | | | | | | | |")
                    continue
                site = "cpu" if b["update_site_cpu"] else "gpu"
                if b["gpu_site_rejected"]:
                    site += " ¹"
                if t == s:
                    site += " ²"
                d = b["final_loss"] - ref_final
                sig = f"{d / sd_ref:+.1f}" if sd_ref == sd_ref and sd_ref > 0 else "-"
                gap = 100 * (start - b["final_loss"]) / (start - teacher)
                w(f"| {s} | {t} | {c} | {site} | {b['initial_loss']:.4f} | {b['final_loss']:.4f} | {d:+.4f} | {sig} | "
                  f"{gap:.1f}% | {b.get('final_agreement', float('nan')):.3f} | {fmt_bytes(b['bytes_h2d_per_step'])} | {b['bytes_h2d_per_step'] / ref_bytes:.2f} | "
                  f"{fmt_bytes(b['bytes_d2h_per_step'])} | {b['seconds']:.1f} |")
    w("")
    w("¹ update_site = \"gpu\" was rejected by the config loader (the label holds its message): a block "
      "that travels in a narrower dtype than its master would be written back rounded, so these run at "
      "update_site = \"cpu\" (the host updates the master and re-derives the transfer copy; nothing is "
      "written back). update_site = \"deferred\" is rejected for the same combinations.")
    w("² transfer equals the storage dtype: the same bytes move as with transfer = \"same\".\n")

    # Seed spread.
    rows = []
    for name in sorted(cases):
        if "/seed:" in name:
            base = name.split("/seed:")[0]
            if base not in rows:
                rows.append(base)
    if rows:
        w("Seed spread (the same task, optimizer seeds 77, 78, ...: z draws differ):\n")
        w("| case | seeds | mean final | std | min | max | mean − fp32 mean |")
        w("|---|---|---|---|---|---|---|")
        ref_mean = stats(ref_spread)[0]
        for base in rows:
            xs = seeds_of(cases, base)
            m, sd = stats(xs)
            w(f"| {base[len('precision/'):]} | {len(xs)} | {m:.4f} | {sd:.4f} | {min(xs):.4f} | {max(xs):.4f} | "
              f"{m - ref_mean:+.4f} |")
        w("")

    # Stochastic rounding: bf16/fp16 masters with SR on (the library) and off (round to nearest
    # even), next to the fp32 master with the same compute dtype and learning rate.
    bases = sorted({n.split("/nosr")[0] for n in cases if "/nosr" in n})
    if bases:
        w("Stochastic rounding of 16-bit masters (SR on = the library's behaviour; off = round to nearest "
          "even). Drop = start − final loss (mean over seeds, count in parentheses); the fp32 master "
          "with the same compute dtype and learning rate is the reference.\n")
        w("| case | lr | fp32 master drop | SR on drop | SR off drop | SR off − on (final) |")
        w("|---|---|---|---|---|---|")
        for base in bases:
            f = parse(base)
            ref_key = base.replace(f"precision/{f['storage']}/", "precision/fp32/", 1)
            on, off, fr = seeds_of(cases, base), seeds_of(cases, base + "/nosr"), seeds_of(cases, ref_key)
            if not on or not off:
                continue

            def drop(key):
                fin, ini = seeds_of(cases, key), seeds_of(cases, key, "initial_loss")
                if not fin:
                    return "-"
                d = [i - x for i, x in zip(ini, fin)]
                m, sd = stats(d)
                return f"{m:.4f} ± {sd:.4f} ({len(d)})" if len(d) > 1 else f"{m:.4f} (1)"

            lr = cases[base].get("lr")
            lr = f"{lr:.0e}" if lr is not None else "?"
            w(f"| {base[len('precision/'):]} | {lr} | {drop(ref_key) if fr else '-'} | {drop(base)} | "
              f"{drop(base + '/nosr')} | {stats(off)[0] - stats(on)[0]:+.4f} |")
        w("")

    res = cases.get("precision/fp32/resident/fp32")
    if res and not res.get("error_occurred"):
        same = "identical" if res["final_loss"] == ref_final else f"differs by {res['final_loss'] - ref_final:+.2e}"
        w(f"Resident engine, fp32: final {res['final_loss']:.6f}, {same} to the streamed fp32 run "
          f"({res['seconds']:.1f} s vs {ref['seconds']:.1f} s).\n")
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main(sys.argv)
