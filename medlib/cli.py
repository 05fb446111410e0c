"""The `medlib` command: list chapters, run them with papermill, check data, show results.

    medlib list                               chapters and their parameters
    medlib run 01_cnn -p dataset breastmnist  one run into runs/01_cnn/<run-id>/
    medlib run all --profile smoke            every chapter (skips finished identical runs)
    medlib data                               which datasets are present and verified
    medlib leaderboard                        every recorded run as a table
    medlib sweep sweeps/smoke.yaml --workers 2  a grid of runs, resumable, in parallel (or --scheduler)
    medlib report runs/ --format html         mean ± std over seeds per configuration, beside the papers
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path

from medlib import chapters as chapters_mod
from medlib import env, paths
from medlib.chapters import notebook_parameters, notebooks_dir, parse_value
from medlib.chapters import notebooks as chapters


def find_chapter(name: str) -> tuple[str, Path]:
    """`chapters.find_chapter`, as the command line reports it: an error line and exit."""
    try:
        return chapters_mod.find_chapter(name)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None


def _cmd_list(args) -> int:
    chs = chapters()
    if not chs:
        print(f"no chapter notebooks found in {notebooks_dir()}")
        return 1
    for name, nb in chs.items():
        print(name)
        for p in notebook_parameters(nb).values():
            hint = f"  # {p['help']}" if p.get("help") else ""
            kind = p.get("inferred_type_name")
            kind = f" ({kind})" if kind and kind != "None" else ""  # papermill infers types from annotations only
            print(f"    {p['name']:<16} = {p['default']:<24}{kind}{hint}")
    return 0


def kernel_manager_class():
    """Kernels that talk to papermill over local IPC sockets (POSIX): private to this user, and
    ipykernel does not warn about unencrypted TCP. TCP where IPC sockets do not exist (Windows)."""
    from jupyter_client import AsyncKernelManager
    from traitlets import default

    if os.name != "posix":
        return AsyncKernelManager

    class IPCKernelManager(AsyncKernelManager):
        @default("transport")
        def _transport_default(self):
            return "ipc"

        @default("ip")
        def _ip_default(self):  # the sockets' path prefix: Jupyter's runtime folder, not the notebooks folder
            from jupyter_core.paths import jupyter_runtime_dir

            Path(jupyter_runtime_dir()).mkdir(parents=True, exist_ok=True)
            return str(Path(jupyter_runtime_dir()) / f"medlib-{os.getpid()}-{uuid.uuid4().hex[:8]}-ipc")

    return IPCKernelManager


def execute(nb: Path, out: Path, params: dict, cwd: Path | None = None, quiet: bool = False) -> None:
    """Run a notebook with papermill (the `medlib run` way: IPC kernel, no progress bar), in
    the notebook's folder unless `cwd` says otherwise."""
    import papermill as pm

    pm.execute_notebook(str(nb), str(out), parameters=params, cwd=str(cwd or nb.parent), progress_bar=False,
                        log_output=not quiet, kernel_manager_class=kernel_manager_class())


def run_key(chapter: str, params: dict, code_fingerprint: str | None) -> str:
    """What makes two runs the same: the chapter, its parameters and the code (fingerprint of
    the commit plus any uncommitted change, `env.code_state`)."""
    return json.dumps({"chapter": chapter, "params": params, "code": code_fingerprint}, sort_keys=True, default=str)


def _finished_run(chapter: str, key: str, runs_root: Path) -> Path | None:
    """An earlier completed run of the same chapter, parameters and code."""
    for meta in sorted((runs_root / chapter).glob("*/run.json")):
        try:
            m = json.loads(meta.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if m.get("status") == "ok" and m.get("key") == key and (meta.parent / "results.json").exists():
            return meta.parent
    return None


def run_chapter(chapter: str, raw_params: list[tuple[str, str]], profile: str | None, name: str | None,
                runs_root: Path, skip_done: bool = False, quiet: bool = False) -> int:
    import papermill as pm

    from medlib.chapters import check

    chapter, nb = find_chapter(chapter)
    valid = notebook_parameters(nb)
    params = {}
    for key, text in raw_params:
        if key not in valid:
            print(f"error: {chapter} has no parameter {key!r}; valid parameters: {', '.join(valid)}",
                  file=sys.stderr)
            return 2
        params[key] = parse_value(text)
    if profile is not None:
        params["profile"] = profile
    elif "profile" in valid and os.environ.get("MEDLIB_PROFILE"):
        params["profile"] = os.environ["MEDLIB_PROFILE"]
    try:  # before a kernel starts: a bad value costs nothing and reads as one line
        check(chapter, params, {k: parse_value(v["default"]) for k, v in valid.items()})
    except ValueError as e:
        print(f"error: {chapter}: {e}", file=sys.stderr)
        return 2

    code = env.code_state()
    key = run_key(chapter, params, code["code_fingerprint"])
    if skip_done:
        done = _finished_run(chapter, key, runs_root)
        if done is not None:
            print(f"{chapter}: already done with these parameters and this code -> {done} (skipped)")
            return 0

    root = runs_root / paths.safe_name(chapter, "chapter")
    if name is not None:
        try:
            run_dir = paths.inside(root / paths.safe_name(name), root)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        if run_dir.exists():
            print(f"error: run {run_dir} already exists; choose another --name (runs are never overwritten)",
                  file=sys.stderr)
            return 2
        run_dir.mkdir(parents=True, exist_ok=False)
    else:
        run_dir = paths.new_run_dir(chapter, params, runs_root)
    out_nb = run_dir / nb.name
    meta = {"chapter": chapter, "params": params, "key": key, "code": code,
            "status": "running", "notebook": str(out_nb)}
    (run_dir / "run.json").write_text(json.dumps(meta, indent=2, default=str))

    before = os.environ.get("MEDLIB_RUNS")
    os.environ["MEDLIB_RUN_DIR"] = str(run_dir)
    os.environ["MEDLIB_RUNS"] = str(runs_root)  # the kernel sees the same runs folder (reuse=True looks there)
    # the kernel inherits this: spinning OpenMP threads slow PyTorch several-fold on a busy CPU
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    print(f"{chapter}: running {nb} with {params or 'defaults'} -> {run_dir}")
    t0 = time.perf_counter()
    try:
        execute(nb, out_nb, params, quiet=quiet)
    except pm.PapermillExecutionError as e:
        meta.update(status="failed", error=f"{e.ename}: {e.evalue}")
        (run_dir / "run.json").write_text(json.dumps(meta, indent=2, default=str))
        print(f"\n{chapter}: FAILED in cell {e.exec_count}: {e.ename}: {e.evalue}", file=sys.stderr)
        print(f"the partly executed notebook is at {out_nb}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        meta.update(status="interrupted")
        (run_dir / "run.json").write_text(json.dumps(meta, indent=2, default=str))
        print(f"\n{chapter}: interrupted; partial notebook at {out_nb}", file=sys.stderr)
        return 130
    finally:
        os.environ.pop("MEDLIB_RUN_DIR", None)
        if before is None:
            os.environ.pop("MEDLIB_RUNS", None)
        else:
            os.environ["MEDLIB_RUNS"] = before
    seconds = time.perf_counter() - t0
    results = run_dir / "results.json"
    meta.update(status="ok" if results.exists() else "no-results", seconds=round(seconds, 1))
    (run_dir / "run.json").write_text(json.dumps(meta, indent=2, default=str))
    print(f"{chapter}: done in {seconds:.0f} s; notebook {out_nb}")
    if results.exists():
        r = json.loads(results.read_text())
        head = ", ".join(f"{k}={v:.3f}" for k, v in (r.get("metrics", {}).get("test") or {}).items()
                         if isinstance(v, (int, float)))
        print(f"{chapter}: results {results}" + (f"\n    test: {head}" if head else ""))
        return 0
    print(f"{chapter}: warning: the notebook finished but wrote no results.json", file=sys.stderr)
    return 1


def _cmd_run(args) -> int:
    runs_root = paths.runs_dir(args.runs)
    if args.deterministic:
        os.environ["MEDLIB_DETERMINISTIC"] = "1"  # setup() in the kernel reads it
    targets = list(chapters()) if args.chapter == "all" else [args.chapter]
    if args.chapter == "all" and args.name:
        print("error: --name names one run; it cannot be used with 'all'", file=sys.stderr)
        return 2
    codes = {}
    for ch in targets:
        codes[ch] = run_chapter(ch, args.param, args.profile, args.name, runs_root,
                                skip_done=args.skip_done, quiet=args.quiet)
    if len(targets) > 1:
        print("\nsummary: " + ", ".join(f"{c} {'ok' if v == 0 else 'FAILED'}" for c, v in codes.items()))
        print(f"results: {runs_root}  (medlib leaderboard shows them as a table)")
    return max(codes.values(), default=0)


def _cmd_data(args) -> int:
    from medlib.data.medmnist import available
    from medlib.data.registry import registry

    root = paths.data_dir(args.data)
    print("data directory (argument > $MEDLIB_DATA > <repo>/datasets):")
    print(f"  {root}   ({'exists' if root.exists() else 'MISSING'})")
    found = available(root)
    print(f"\nMedMNIST files in {root / 'medmnist'}: {len(found)} of "
          f"{sum(len(i.sizes) for i in registry().values())} known")
    for flag, size, p, status in found:
        print(f"  {flag:<16} {size:>3} px  {status:<18} {p.name}")
    for name in ("dsb2018_96", "drive"):
        d = root / name
        print(f"{name:<18} {'present' if d.is_dir() else 'absent'}  {d}")
    bad = [f for f in found if f[3] != "verified"]
    return 1 if bad else 0


def _cmd_leaderboard(args) -> int:
    from medlib.results import leaderboard, leaderboard_tables

    df = leaderboard(args.runs, split=args.split, chapter=args.chapter)
    if df.empty:
        print(f"no results.json under {paths.runs_dir(args.runs)}")
        return 0
    import pandas as pd

    print(f"{args.split} metrics of {len(df)} run(s) under {paths.runs_dir(args.runs)}"
          + ("" if args.all else "  (--all adds CI bounds and per-image/pooled variants)"))
    with pd.option_context("display.width", 200, "display.max_columns", 40, "display.float_format", "{:.3f}".format):
        for chapter, table in leaderboard_tables(df, full=args.all).items():
            print(f"\n{chapter}\n{table.to_string(index=False)}")
    return 0


def _cmd_sweep(args) -> int:
    from medlib.sweep import GridError, Sweep, expand, load_grid

    if args.workers < 1:
        print("error: --workers must be 1 or more", file=sys.stderr)
        return 2
    if args.scheduler:
        import importlib.util

        if importlib.util.find_spec("distributed") is None:
            print("error: --scheduler needs Dask distributed: pip install -e '.[cluster]'", file=sys.stderr)
            return 2
    try:
        grid = load_grid(args.grid)
        specs = expand(grid)
    except GridError as e:
        print(f"error: {args.grid}: {e}", file=sys.stderr)
        return 2
    sweep = Sweep(specs, paths.runs_dir(args.out), name=str(grid["name"]), workers=args.workers,
                  scheduler=args.scheduler, grid_file=str(Path(args.grid).resolve()))
    if args.dry_run:
        plan = sweep.plan()
        todo = sum(state != "done" for *_, state in plan)
        print(f"sweep {grid['name']}: {len(plan)} runs, {todo} to run, {len(plan) - todo} already done "
              f"(same parameters, same code) -> {sweep.root}")
        for spec, rid, state in plan:
            print(f"  {state:<7} {spec.chapter}/{rid}   {spec.describe()}")
        return 0
    where = (f"a Dask LocalCluster of {args.workers} worker(s)" if args.scheduler == "local" else
             f"the Dask scheduler at {args.scheduler}") if args.scheduler else \
        f"{args.workers} worker(s) here, {sweep.threads_per_run()} thread(s) each"
    print(f"sweep {grid['name']}: {len(specs)} runs on {where} -> {sweep.root}")
    return sweep.run(progress=not args.no_progress)


def _cmd_report(args) -> int:
    from medlib.report import build_report

    try:
        text, path = build_report(args.runs_dir, fmt=args.format, out=args.out, split=args.split,
                                  across_code=args.across_code)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if path is None:
        print(text)
    else:
        print(f"report written to {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="medlib", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="chapters and their parameters").set_defaults(fn=_cmd_list)
    r = sub.add_parser("run", help="run a chapter (or 'all') with papermill")
    r.add_argument("chapter", help="e.g. 01_cnn, 01, cnn, or 'all'")
    r.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    r.add_argument("--profile", choices=["smoke", "standard", "paper"])
    r.add_argument("--name", help="run directory name (default: timestamp-dataset-model-random)")
    r.add_argument("--runs", help="runs directory (default: $MEDLIB_RUNS or <repo>/runs)")
    r.add_argument("--skip-done", action="store_true",
                   help="skip a chapter already run with the same parameters and the same code")
    r.add_argument("--quiet", action="store_true", help="do not echo the notebook's output")
    r.add_argument("--deterministic", action="store_true",
                   help="deterministic kernels (slower on a GPU; an op without one raises)")
    r.set_defaults(fn=_cmd_run)
    d = sub.add_parser("data", help="which datasets are present and verified")
    d.add_argument("--data", help="data directory (default: $MEDLIB_DATA or <repo>/datasets)")
    d.set_defaults(fn=_cmd_data)
    lb = sub.add_parser("leaderboard", help="all recorded results as a table")
    lb.add_argument("--runs")
    lb.add_argument("--split", default="test")
    lb.add_argument("--chapter")
    lb.add_argument("--all", action="store_true", help="also CI bounds and per-image/pooled variants")
    lb.set_defaults(fn=_cmd_leaderboard)
    sw = sub.add_parser("sweep", help="run a grid of chapters x parameters x seeds (resumable, parallel)")
    sw.add_argument("grid", help="a grid file, e.g. sweeps/smoke.yaml")
    sw.add_argument("--out", help="runs directory (default: $MEDLIB_RUNS or <repo>/runs)")
    sw.add_argument("--workers", type=int, default=1,
                    help="runs at once here (the CPU threads are split between them); with "
                         "--scheduler local, the LocalCluster's worker processes")
    sw.add_argument("--scheduler", help="a Dask scheduler address (tcp://host:8786), or 'local' for a LocalCluster here")
    sw.add_argument("--dry-run", action="store_true", help="list the runs and which are already done; run nothing")
    sw.add_argument("--no-progress", action="store_true", help="no progress bar (one line per finished run stays)")
    sw.set_defaults(fn=_cmd_sweep)
    rp = sub.add_parser("report", help="mean ± std over seeds per configuration, beside the published baselines")
    rp.add_argument("runs_dir", nargs="?", help="a runs directory, or a folder of results.json records "
                                                 "(default: $MEDLIB_RUNS or <repo>/runs)")
    rp.add_argument("--format", choices=["md", "html"], default="md")
    rp.add_argument("--out", help="write here (default: print Markdown; HTML goes to <runs_dir>/report.html)")
    rp.add_argument("--split", default="test")
    rp.add_argument("--across-code", action="store_true",
                    help="average runs of different code versions together (each row then says how many)")
    rp.set_defaults(fn=_cmd_report)
    return ap


def main(argv=None) -> int:
    # jsonschema (under papermill's nbformat) compiles an RFC 3987 IRI grammar when the optional
    # rfc3987-syntax package is installed: 4-5 s per process on a 2-core machine, for a string
    # format no notebook schema uses. Without it jsonschema skips that one format check. A sweep
    # starts one `medlib run` per run, so this is paid per run.
    sys.modules.setdefault("rfc3987_syntax", None)
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except BrokenPipeError:  # `medlib list | head`: the reader left; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
