"""Wall time of `medlib sweep sweeps/smoke.yaml` with 1 and 2 workers here, and through a Dask
LocalCluster of 2 workers; whether the three give the same set of results.

    python bench/sweep_wall.py            # ~25 min on 2 cores -> results/sweep_smoke.json,
                                          #   results/sweep_smoke_report.md (the 2-worker sweep's report)

Each mode sweeps into its own fresh folder (nothing is skipped). Run it on a quiet machine:
the point is the time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import RESULTS, finish, machine, write

from medlib.report import HEADLINE

REPO = Path(__file__).resolve().parents[1]
MODES = {"1 worker": ["--workers", "1"], "2 workers": ["--workers", "2"],
         "Dask LocalCluster, 2 workers": ["--workers", "2", "--scheduler", "local"]}


def sweep(grid: Path, out: Path, args: list[str]) -> dict:
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "medlib.cli", "sweep", str(grid), "--out", str(out), "--no-progress",
                        *args], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    print(p.stdout[-2000:], p.stderr[-2000:], flush=True)
    manifest = json.loads(next((out / "_sweeps").glob("*.json")).read_text())
    results = {}
    for r in manifest["runs"]:
        res = Path(r["run_dir"]) / "results.json"
        if r["status"] == "ok" and res.exists():
            rec = json.loads(res.read_text())
            test = rec["metrics"].get("test") or {}
            results[f"{r['chapter']}/{r['run_id']}"] = {m: test.get(m) for m in HEADLINE.get(r["chapter"], ())}
    return {"exit_code": p.returncode, "wall_seconds": round(wall, 1), "counts": manifest["counts"],
            "threads_per_run": manifest.get("threads_per_run"),
            "run_seconds": {f"{r['chapter']}/{r['run_id']}": r.get("seconds") for r in manifest["runs"]},
            "results": results}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grid", default=str(REPO / "sweeps" / "smoke.yaml"))
    args = ap.parse_args(argv)
    info = {"machine": machine(), "grid": str(Path(args.grid).relative_to(REPO)), "modes": {}}
    with tempfile.TemporaryDirectory(prefix="sweep-bench-") as tmp:
        for name, extra in MODES.items():
            out = Path(tmp) / name.replace(" ", "_").replace(",", "")
            info["modes"][name] = sweep(Path(args.grid), out, extra)
            print(name, info["modes"][name]["wall_seconds"], "s", info["modes"][name]["counts"], flush=True)
            if name == "2 workers":
                report = subprocess.run([sys.executable, "-m", "medlib.cli", "report", str(out)],
                                        capture_output=True, text=True, check=True).stdout
                (RESULTS / "sweep_smoke_report.md").write_text(report.replace(str(out), "runs/"))
    modes = list(info["modes"].values())
    sets = [set(m["results"]) for m in modes]
    info["same_runs"] = all(s == sets[0] for s in sets)
    def max_diff(a: dict, b: dict):
        d = [abs(x - y) for k, v in a["results"].items() if k in b["results"]
             for x, y in zip(v.values(), b["results"][k].values()) if x is not None and y is not None]
        return max(d, default=None)

    names = list(info["modes"])  # 1 worker runs 2 threads per run, the others 1: float sums may differ
    info["max_abs_metric_difference"] = {f"{n} vs {names[0]}": max_diff(info["modes"][n], modes[0]) for n in names[1:]}
    info["max_abs_metric_difference"][f"{names[2]} vs {names[1]}"] = max_diff(modes[2], modes[1])
    base = modes[0]["wall_seconds"]
    info["speedup_vs_1_worker"] = {n: round(base / m["wall_seconds"], 2) for n, m in info["modes"].items()}
    finish(info["machine"])
    print(json.dumps({k: v for k, v in info.items() if k != "modes"}, indent=1))
    print("wrote", write("sweep_smoke", info))
    return 0 if all(m["exit_code"] == 0 for m in modes) else 1


if __name__ == "__main__":
    sys.exit(main())
