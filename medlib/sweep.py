"""`medlib sweep`: many chapter runs from one grid file, resumable, in parallel here or on a
Dask cluster. Chapter 10 reads what it produced.

A grid (YAML; `sweeps/*.yaml` are examples):

    name: smoke
    profile: smoke             # every run's profile (a run may name its own)
    seeds: [0, 1]              # every combination runs once per seed
    params: {size: 28}         # given to every chapter listed (each must have the parameter)
    chapters:                  # the cartesian product of each chapter's lists
      01_cnn: {dataset: [pneumoniamnist, breastmnist], model: [null, simplecnn]}
      05_unet: {}              # its defaults
      07_vit: {dataset: present}   # every dataset whose file is here
    runs:                      # explicit combinations, added as they are
      - {chapter: 02_rnn, dataset: vesselmnist3d, seed: 3}

Each run is `medlib run CHAPTER -p ... --name RUN_ID` in a subprocess, into
`<out>/<chapter>/<run id>/`. The run id is the parameters' tag and a hash of (chapter,
parameters, profile, seed, code fingerprint), so a rerun of the same grid on the same code
finds its finished runs and skips them. A run is claimed with an exclusive lock
(`<out>/<chapter>/.<run id>.lock`, `fcntl.flock`) for as long as it runs: a second sweep
pointed at the same folder waits for it instead of running it twice. An unfinished run
directory (failed, interrupted) is moved aside to `<run id>.attempt<N>`, never deleted.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from medlib import paths
from medlib.io import write_json_atomic

GRID_KEYS = ("name", "profile", "seeds", "params", "chapters", "runs")
PRESENT = "present"  # grid value: every dataset of the chapter whose data is on this machine


class GridError(ValueError):
    """A grid names something that does not exist; the message lists every problem."""


@dataclass(frozen=True)
class RunSpec:
    chapter: str
    params: tuple  # sorted (name, value) pairs, the profile excluded
    profile: str | None

    @property
    def kwargs(self) -> dict:
        return dict(self.params)

    def describe(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in self.params)
        return f"{self.chapter} [{self.profile or 'default profile'}] {shown}"


def run_id(spec: RunSpec, code_fingerprint: str | None) -> str:
    """'<dataset>-<model>-seed<N>-<hash>': readable, and the same for the same run on the same code."""
    key = json.dumps({"chapter": spec.chapter, "params": spec.kwargs, "profile": spec.profile,
                      "code": code_fingerprint}, sort_keys=True, default=str)
    tag = paths.run_tag(spec.kwargs)
    seed = spec.kwargs.get("seed")
    parts = [tag or spec.chapter, f"seed{seed}" if seed is not None else "", hashlib.sha256(key.encode()).hexdigest()[:8]]
    return paths.safe_name("-".join(p for p in parts if p))


# ---------------------------------------------------------------- reading and checking a grid
def load_grid(path: str | os.PathLike) -> dict:
    import yaml

    p = Path(path)
    if not p.is_file():
        raise GridError(f"no grid file {p}; see sweeps/*.yaml for examples")
    try:
        grid = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise GridError(f"{p} is not valid YAML: {e}") from None
    if not isinstance(grid, dict):
        raise GridError(f"{p}: a grid is a mapping with keys {', '.join(GRID_KEYS)}")
    grid.setdefault("name", p.stem)
    return grid


def _as_list(v) -> list:
    return list(v) if isinstance(v, (list, tuple)) else [v]


def present_datasets(chapter: str, size: int | None = None) -> list[str]:
    """The chapter's datasets whose files are in the data directory (MedMNIST at `size`,
    28 px when not given; segmentation folders)."""
    from medlib.chapters import spec
    from medlib.data.medmnist import medmnist_path
    from medlib.data.segmentation import DATASETS

    names = spec(chapter).get("datasets") or []
    out = []
    for name in names:
        if name in DATASETS:
            if (paths.data_dir() / name).is_dir():
                out.append(name)
        elif medmnist_path(name, size or 28).exists():
            out.append(name)
    return out


def expand(grid: dict) -> list[RunSpec]:
    """The grid's runs, in order, without duplicates. Raises GridError listing every problem."""
    from medlib.chapters import find_chapter
    from medlib.chapters import notebooks as known_chapters

    problems = [f"unknown key {k!r} (valid: {', '.join(GRID_KEYS)})" for k in grid if k not in GRID_KEYS]
    seeds = _as_list(grid.get("seeds", [None]))
    if any(s is not None and (not isinstance(s, int) or isinstance(s, bool) or s < 0) for s in seeds):
        problems.append(f"seeds must be non-negative integers, got {grid.get('seeds')!r}")
    common = grid.get("params") or {}
    blocks = grid.get("chapters") or {}
    if isinstance(blocks, dict):
        blocks = [{"chapter": c, **(v or {})} for c, v in blocks.items()]
    explicit = grid.get("runs") or []
    if not isinstance(blocks, list) or not all(isinstance(b, dict) for b in blocks) or not isinstance(explicit, list):
        raise GridError("`chapters` is a mapping {chapter: {param: values}} and `runs` a list of mappings")
    if not blocks and not explicit:
        problems.append("the grid lists no runs: add `chapters:` and/or `runs:`")

    combos: list[tuple[str, dict, int]] = []  # (chapter, params, block number)
    for b, block in enumerate(blocks):
        block = dict(block)
        ch = block.pop("chapter", None)
        block = {**common, **block}
        for ch_name in _as_list(ch):
            axes = {k: _as_list(v) for k, v in block.items()}
            if "seed" not in axes:
                axes["seed"] = seeds
            names = list(axes)
            for values in itertools.product(*axes.values()):
                combos.append((ch_name, dict(zip(names, values)), b))
    for i, item in enumerate(explicit):  # one run each (one per grid seed when the item names no seed)
        item = dict(item)
        ch = item.pop("chapter", None)
        combos += [(ch, {**common, "seed": s, **item}, -1 - i) for s in ([item["seed"]] if "seed" in item else seeds)]

    valid_chapters = known_chapters()
    specs, seen, found = [], set(), {}
    for ch, params, block in combos:
        try:
            name, nb = find_chapter(str(ch))
        except ValueError:
            problems.append(f"unknown chapter {ch!r}; valid chapters: {', '.join(valid_chapters)}")
            continue
        expanded = present_datasets(name, params.get("size")) if params.get("dataset") == PRESENT else [None]
        found[(name, block)] = found.get((name, block), 0) + len(expanded)
        for d in expanded:
            spec = _checked(name, nb, params if d is None else {**params, "dataset": d}, grid.get("profile"), problems)
            if spec is not None and spec not in seen:
                seen.add(spec)
                specs.append(spec)
    problems += [f"{name}: `dataset: present` found none of this chapter's datasets in {paths.data_dir()}"
                 for (name, _), n in found.items() if n == 0]
    if problems:
        raise GridError("the grid cannot run:\n  - " + "\n  - ".join(dict.fromkeys(problems)))
    return specs


def _checked(chapter: str, nb: Path, params: dict, profile, problems: list) -> RunSpec | None:
    from medlib.chapters import check, notebook_parameters, parse_value

    valid = notebook_parameters(nb)
    params = {k: v for k, v in params.items() if not (k == "seed" and v is None)}
    profile = params.pop("profile", profile)
    bad = [k for k in params if k not in valid]
    if bad:
        problems.append(f"{chapter} has no parameter {', '.join(map(repr, bad))}; valid parameters: {', '.join(valid)}")
        return None
    if profile is not None and profile not in ("smoke", "standard", "paper"):
        problems.append(f"unknown profile {profile!r}; valid: smoke, standard, paper")
        return None
    try:
        check(chapter, {**params, **({"profile": profile} if profile else {})},
              {k: parse_value(v["default"]) for k, v in valid.items()})
    except ValueError as e:
        problems.append(f"{chapter}: {e}")  # the same problem for every seed is listed once
        return None
    return RunSpec(chapter, tuple(sorted(params.items())), profile)


# ---------------------------------------------------------------- one run
def _lock(path: Path, block: bool):
    """An exclusive flock on `path`, or None when another process holds it (block=False)."""
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def run_state(run_dir: Path) -> str:
    """'done' (results.json and run.json status ok), 'absent', or the unfinished run's status."""
    if not run_dir.exists():
        return "absent"
    try:
        status = json.loads((run_dir / "run.json").read_text()).get("status")
    except (OSError, json.JSONDecodeError):
        status = None
    if status == "ok" and (run_dir / "results.json").exists():
        return "done"
    return status or "unfinished"


def _move_aside(run_dir: Path) -> Path:
    for n in itertools.count(1):
        dest = run_dir.with_name(f"{run_dir.name}.attempt{n}")
        if not dest.exists():
            run_dir.rename(dest)
            return dest
    raise AssertionError  # unreachable


_CHILDREN: set = set()
_CHILDREN_LOCK = threading.Lock()


def execute_one(spec: RunSpec, rid: str, root: str, threads: int | None = None, block: bool = False) -> dict:
    """Run one spec unless done or claimed; returns {status, run_id, seconds, ...}.

    status: 'done' (skipped: finished earlier), 'busy' (another process holds its lock;
    block=True waits for it instead), 'ok', or 'failed' (its log and partial notebook are in
    the run directory)."""
    root_p = Path(root)
    chapter_dir = root_p / spec.chapter
    chapter_dir.mkdir(parents=True, exist_ok=True)
    run_dir = chapter_dir / rid
    out = {"chapter": spec.chapter, "params": spec.kwargs, "profile": spec.profile, "run_id": rid,
           "run_dir": str(run_dir)}
    fd = _lock(chapter_dir / f".{rid}.lock", block)
    if fd is None:
        return {**out, "status": "busy"}
    try:
        state = run_state(run_dir)
        if state == "done":
            return {**out, "status": "done"}
        if state != "absent":
            out["previous_attempt"] = str(_move_aside(run_dir))
        log = chapter_dir / f".{rid}.log"
        cmd = [sys.executable, "-m", "medlib.cli", "run", spec.chapter, "--name", rid, "--runs", str(root_p), "--quiet"]
        if spec.profile:
            cmd += ["--profile", spec.profile]
        for k, v in spec.params:
            cmd += ["-p", k, repr(v)]
        env = dict(os.environ)
        if threads:
            for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
                env[var] = str(threads)
        t0 = time.perf_counter()
        with open(log, "wb") as fh:
            proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=paths.REPO_ROOT,
                                    pass_fds=(fd,))  # the child holds the claim too, for as long as it lives
            with _CHILDREN_LOCK:
                _CHILDREN.add(proc)
            try:
                code = proc.wait()
            finally:
                with _CHILDREN_LOCK:
                    _CHILDREN.discard(proc)
        seconds = time.perf_counter() - t0
        if run_dir.is_dir():
            os.replace(log, run_dir / "sweep.log")
            log = run_dir / "sweep.log"
        ok = code == 0 and run_state(run_dir) == "done"
        out.update(status="ok" if ok else "failed", seconds=round(seconds, 1), exit_code=code, log=str(log))
        if not ok:
            out["error"] = _error_line(run_dir, log)
        return out
    finally:
        os.close(fd)


def _error_line(run_dir: Path, log: Path) -> str:
    try:
        err = json.loads((run_dir / "run.json").read_text()).get("error")
        if err:
            return err
    except (OSError, json.JSONDecodeError):
        pass
    try:
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
        return lines[-1][:300] if lines else "no output"
    except OSError:
        return "no log"


def _execute_on_worker(spec: RunSpec, rid: str, root: str, threads: int | None, block: bool) -> dict:
    """Dask task: threads per run = the worker machine's cores / the worker's task slots."""
    if threads is None:
        from distributed import get_worker

        w = get_worker()
        slots = getattr(getattr(w, "state", None), "nthreads", None) or getattr(w, "nthreads", 1)
        threads = max(1, (os.cpu_count() or 1) // slots)
    return execute_one(spec, rid, root, threads, block)


# ---------------------------------------------------------------- the sweep
@dataclass
class Sweep:
    specs: list[RunSpec]
    root: Path
    name: str = "sweep"
    workers: int = 1
    scheduler: str | None = None
    grid_file: str | None = None
    outcomes: list[dict] = field(default_factory=list)

    def plan(self) -> list[tuple[RunSpec, str, str]]:
        """(spec, run id, state) for every run: what `--dry-run` prints."""
        from medlib.env import code_state

        code = code_state()["code_fingerprint"]
        out = []
        for s in self.specs:
            rid = run_id(s, code)
            d = self.root / s.chapter / rid
            out.append((s, rid, "done" if run_state(d) == "done" else "to run"))
        return out

    def threads_per_run(self) -> int:
        return max(1, (os.cpu_count() or 1) // max(1, self.workers))

    def run(self, progress: bool = True) -> int:
        """Run every spec; 0 if every run is done or ok, 1 if any failed, 130/143 if interrupted."""
        plan = self.plan()
        self.started = _dt.datetime.now(_dt.UTC).isoformat()
        self.t0 = time.perf_counter()
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        self.manifest = self.root / "_sweeps" / f"{paths.safe_name(self.name, 'sweep name')}-{stamp}-{os.getpid()}.json"
        bar = _Progress(len(plan), progress)
        previous = signal.signal(signal.SIGTERM, _raise_interrupt) if threading.current_thread() is threading.main_thread() else None
        status = "finished"
        try:
            if self.scheduler:
                self._run_dask(plan, bar)
            else:
                self._run_local(plan, bar)
        except (KeyboardInterrupt, _Interrupted) as e:
            status = "interrupted"
            _stop_children()
            self._save(status, bar)
            bar.close()
            print(f"\nsweep interrupted; rerun the same command to resume (finished runs are kept). "
                  f"Record: {self.manifest}", file=sys.stderr)
            return 143 if isinstance(e, _Interrupted) else 130
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        bar.close()
        self._save(status, bar)
        failed = [o for o in self.outcomes if o["status"] == "failed"]
        print(f"sweep {self.name}: {bar.summary()} in {time.perf_counter() - self.t0:.0f} s -> {self.root}")
        for o in failed:
            print(f"  FAILED {o['chapter']}/{o['run_id']}: {o.get('error')}\n         log: {o.get('log')}", file=sys.stderr)
        print(f"record of this sweep: {self.manifest}")
        return 1 if failed else 0

    def _record(self, outcome: dict, bar: _Progress) -> None:
        self.outcomes.append(outcome)
        bar.update(outcome)
        self._save("running", bar)

    def _run_local(self, plan, bar) -> None:
        from concurrent.futures import ThreadPoolExecutor, as_completed

        threads = self.threads_per_run()
        busy = []
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            futures = [pool.submit(execute_one, s, rid, str(self.root), threads, False) for s, rid, _ in plan]
            try:
                for f in as_completed(futures):
                    o = f.result()
                    if o["status"] == "busy":  # another sweep is running it: come back after the rest
                        busy.append(o)
                        continue
                    self._record(o, bar)
                for o in busy:  # wait for the other sweep's run, then take it over only if it did not finish
                    bar.note(f"waiting for another sweep's run {o['chapter']}/{o['run_id']}")
                    spec = next(s for s, rid, _ in plan if rid == o["run_id"] and s.chapter == o["chapter"])
                    self._record(pool.submit(execute_one, spec, o["run_id"], str(self.root), threads, True).result(), bar)
            except BaseException:  # stop the runs now, or leaving the pool would wait for them to finish
                for f in futures:
                    f.cancel()
                _stop_children()
                raise

    def _run_dask(self, plan, bar) -> None:
        from distributed import Client, LocalCluster, as_completed

        cluster = None
        if self.scheduler == "local":  # a LocalCluster here: `workers` processes of one task each
            cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None)
            client, threads = Client(cluster), self.threads_per_run()
        else:
            client, threads = Client(self.scheduler), None
        try:
            futures = {client.submit(_execute_on_worker, s, rid, str(self.root), threads, True, pure=False,
                                     key=f"medlib-{s.chapter}-{rid}"): s for s, rid, _ in plan}
            for f in as_completed(futures):
                try:
                    o = f.result()
                except Exception as e:  # the worker died or could not import medlib
                    s = futures[f]
                    o = {"chapter": s.chapter, "params": s.kwargs, "profile": s.profile, "run_id": f.key,
                         "status": "failed", "error": f"{type(e).__name__}: {e}"}
                self._record(o, bar)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()

    def _save(self, status: str, bar: _Progress) -> None:
        write_json_atomic(self.manifest, overwrite=True, obj={
            "sweep": self.name, "grid": self.grid_file, "status": status, "workers": self.workers,
            "scheduler": self.scheduler, "threads_per_run": self.threads_per_run() if not self.scheduler else None,
            "started": self.started, "wall_seconds": round(time.perf_counter() - self.t0, 1),
            "counts": bar.counts, "runs": self.outcomes})


class _Interrupted(Exception):
    pass


def _raise_interrupt(signum, frame):
    raise _Interrupted()


def _stop_children() -> None:
    with _CHILDREN_LOCK:
        procs = list(_CHILDREN)
    for p in procs:
        with contextlib.suppress(ProcessLookupError):
            p.send_signal(signal.SIGINT)  # `medlib run` marks its run "interrupted" and stops its kernel
    deadline = time.time() + 20
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            p.kill()


class _Progress:
    """A tqdm bar: runs finished (ok / failed / skipped as done), elapsed, estimate."""

    def __init__(self, total: int, enabled: bool):
        from tqdm.auto import tqdm

        self.counts = {"ok": 0, "failed": 0, "done": 0}
        self.total = total
        self.bar = tqdm(total=total, unit="run", disable=not enabled, dynamic_ncols=True, file=sys.stdout)

    def update(self, o: dict) -> None:
        self.counts[o["status"]] = self.counts.get(o["status"], 0) + 1
        left = self.total - sum(self.counts.values())
        self.bar.set_postfix(ok=self.counts["ok"], failed=self.counts["failed"], skipped=self.counts["done"], left=left)
        self.bar.update(1)
        if o["status"] in ("ok", "failed"):
            self.note(f"{o['status']:>6}  {o['chapter']}/{o['run_id']}  ({o.get('seconds', 0):.0f} s)")

    def note(self, text: str) -> None:
        if self.bar.disable:
            print(text, flush=True)
        else:
            self.bar.write(text)

    def summary(self) -> str:
        c = self.counts
        return f"{c['ok']} ran, {c['failed']} failed, {c['done']} skipped (already done)"

    def close(self) -> None:
        self.bar.close()
