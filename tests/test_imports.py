"""The library's import graph has no cycle, every module imports on its own (in any order),
and importing medlib changes nothing: no files, no seeding, no output, no global flags."""

import ast
import json
import random
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULES = sorted(
    ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    for p in (ROOT / "medlib").rglob("*.py"))


def _imports(path: Path, name: str) -> set[str]:
    """medlib modules that `name` imports anywhere (module level or inside functions)."""
    out = set()
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            for a in node.names:  # `from pkg import submodule` needs the submodule, not pkg's __init__
                out.add(f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base)
    return {m for m in out if m in MODULES and m != name}


def _graph() -> dict[str, set[str]]:
    graph = {}
    for m in MODULES:
        p = ROOT / (m.replace(".", "/") + ".py")
        p = p if p.exists() else ROOT / m.replace(".", "/") / "__init__.py"
        graph[m] = _imports(p, m)
    return graph


def _find_cycle(graph):
    state, stack = {}, []

    def dfs(u):
        state[u] = 1
        stack.append(u)
        for v in sorted(graph[u]):
            if state.get(v) == 1:
                return stack[stack.index(v):] + [v]
            if v not in state and (c := dfs(v)):
                return c
        state[u] = 2
        stack.pop()
        return None

    for m in graph:
        if m not in state and (c := dfs(m)):
            return c
    return None


def test_no_import_cycle_between_medlib_modules():
    cycle = _find_cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_can_fail():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_every_module_imports_alone_and_in_any_order():
    orders = [[m] for m in MODULES]  # each module first, in a fresh interpreter
    rng = random.Random(0)
    for _ in range(2):  # and all of them, in two shuffled orders
        order = MODULES[:]
        rng.shuffle(order)
        orders.append(order)
    batches = [orders[i::4] for i in range(4)]
    code = "import importlib, sys\nfor order in {}:\n    for m in list(sys.modules):\n        if m.startswith('medlib'):\n            del sys.modules[m]\n    for m in order:\n        importlib.import_module(m)\n"
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda b: _python(code.format(b)), batches))
    failed = [r.stderr[-800:] for r in results if r.returncode != 0]
    assert not failed, failed[0]


def test_import_has_no_side_effects(tmp_path):
    """Import every module in a fresh interpreter started in an empty folder: nothing is
    written, printed, seeded or switched on."""
    code = f"""
import json, os, sys
sys.path.insert(0, {str(ROOT)!r})
import torch, torchvision  # torchvision itself sets TORCHINDUCTOR_CACHE_DIR: not medlib's doing
before = torch.get_rng_state().clone()
det = torch.are_deterministic_algorithms_enabled()
env = dict(os.environ)
import importlib
for m in {MODULES!r}:
    importlib.import_module(m)
print(json.dumps({{"rng_same": bool(torch.equal(before, torch.get_rng_state())),
                  "det_same": det == torch.are_deterministic_algorithms_enabled(),
                  "env_same": env == dict(os.environ),
                  "files": sorted(os.listdir("."))}}))
"""
    work, home = tmp_path / "work", tmp_path / "home"  # caches of matplotlib & co. go to HOME
    work.mkdir(), home.mkdir()
    r = subprocess.run([sys.executable, "-c", code], cwd=work, capture_output=True, text=True, timeout=300,
                       env={"MEDLIB_RUNS": str(work / "runs"), "PATH": "/usr/bin:/bin", "HOME": str(home)})
    assert r.returncode == 0, r.stderr[-800:]
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1, f"importing medlib printed: {lines[:-1]}"
    out = json.loads(lines[0])
    assert out == {"rng_same": True, "det_same": True, "env_same": True, "files": []}, out
