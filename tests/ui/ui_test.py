"""Run the chapter notebooks in a real browser, the way a student meets them (`make ui-test`).

Starts JupyterLab on a free localhost port with a temporary token, opens each chapter in
headless Chromium (Debian's /usr/bin/chromium, driven by Playwright's Python API), runs it
top to bottom in the smoke profile with live widgets, and checks that

* every code cell ran and none shows an error output;
* every ipywidgets view renders (no "Error displaying widget", no "Loading widget..." left,
  widget DOM present) -- and that chapters listed as required in CHAPTERS have at least one;
* moving a slider (an arrow key on its focused handle) changes a figure;
* JupyterLab, the loaded @jupyter-widgets/jupyterlab-manager extension and ipywidgets agree.

Writes build/ui/<chapter>.png (a rendered widget), build/ui/<chapter>.console.log (browser
console), build/ui/work/<chapter>.ipynb (the executed copy; the notebooks under notebooks/
are copied, never opened in place) and build/ui/jupyter.log. Exits non-zero on any failure.

A plain script, not a pytest module: tests/ui/conftest.py keeps `pytest tests` away from it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"

# Chapter -> must it show at least one widget? Chapters without a required widget still run,
# must show no error output, and every widget they do show must render.
CHAPTERS = {
    "00_data_tour": True,  # medlib.widgets.slice_explorer (section 5)
    "01_cnn": True,  # medlib.viz.classification.operating_point_explorer (section 7, validation)
    "02_rnn": True,  # medlib.viz.volumes.attention_explorer (section 9)
    "03_autoencoders": True,  # the denoising explorer (section 3): noise level and image sliders
    "04_gans": True,  # the class and latent-walk explorer (section 9): a class menu and a t slider
    "05_unet": True,  # medlib.viz.segmentation.threshold_explorer (section 10)
    "07_vit": True,  # medlib.viz.vit.attention_explorer (section 9): image, block, head
    "08_hybrids": True,  # the GLCM explorer (section 3): image, grey levels, offset
    "09_xai": True,  # medlib.viz.xai.explorer (section 9): image, method, class, layer
    "10_benchmark": True,
    "11_trust": True,  # the temperature explorer (section 10): reliability diagram against T  # the winner's-curse figure (section 5): k configurations tried on the test set
}

CHROMIUM = os.environ.get("MEDLIB_UI_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-first-run", "--no-default-browser-check", "--disable-extensions",
]
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
# ipywidgets major -> major of the @jupyter-widgets/jupyterlab-manager labextension it needs
MANAGER_MAJOR = {7: 3, 8: 5}

# Helpers installed in the page; they reach JupyterLab through window.jupyterapp
# (LabApp.expose_app_in_browser).
INIT_JS = r"""
window.__ui = {
  panel(path) {
    const app = window.jupyterapp;
    if (!app) return null;
    for (const w of app.shell.widgets('main')) {
      if (w.context && w.context.path === path && w.content && w.content.widgets) return w;
    }
    return null;
  },
  hash(s) {  // FNV-1a over the string: compare images without shipping base64 around
    let h = 0x811c9dc5;
    for (let i = 0; i < s.length; i++) { h ^= s.charCodeAt(i); h = Math.imul(h, 0x01000193); }
    return (h >>> 0).toString(16) + ':' + s.length;
  },
};
"""

PROGRESS_JS = r"""
(path) => {
  const p = window.__ui.panel(path);
  if (!p) return null;
  let code = 0, done = 0, running = 0;
  for (const c of p.content.widgets) {
    if (c.model.type !== 'code') continue;
    code++;
    if (c.model.executionState === 'running') running++;
    if (c.model.executionCount !== null && c.model.executionCount !== undefined) done++;
  }
  const k = p.sessionContext.session && p.sessionContext.session.kernel;
  return {code, done, running, kernel: k ? k.status : 'none'};
}
"""

# Error outputs and widget views from the notebook model; tags the DOM nodes for the locators.
SCAN_JS = r"""
([path, mime]) => {
  const p = window.__ui.panel(path);
  const errors = [], widgets = [], unrun = [];
  p.content.widgets.forEach((c, i) => {
    c.node.setAttribute('data-uitest-cell', String(i));
    if (c.model.type !== 'code') return;
    if (c.model.executionCount === null && c.model.sharedModel.getSource().trim()) unrun.push(i);
    const outs = c.model.outputs.toJSON();
    const children = c.outputArea ? c.outputArea.widgets : [];
    outs.forEach((o, j) => {
      if (children[j]) children[j].node.setAttribute('data-uitest-out', i + '-' + j);
      if (o.output_type === 'error') {
        errors.push({cell: i, ename: o.ename, evalue: o.evalue,
                     traceback: (o.traceback || []).slice(-4).join('\n')});
      }
      if (o.data && o.data[mime]) widgets.push({cell: i, out: j, model_id: o.data[mime].model_id});
    });
  });
  return {errors, widgets, unrun};
}
"""

# One output's widget state: loading/error text, rendered widget DOM, the controls inside.
WIDGET_STATE_JS = r"""
(node) => {
  const text = node.innerText || '';
  const controls = [];
  const sel = '.widget-inline-hbox, .widget-inline-vbox, .widget-toggle-buttons';
  for (const el of node.querySelectorAll(sel)) {
    const kind = [...el.classList].filter(c => c.startsWith('widget-') &&
      !['widget-inline-hbox', 'widget-inline-vbox', 'widget-box', 'widget-hslider'].includes(c))
      .map(c => c.slice(7)).join('.');
    const label = el.querySelector(':scope > .widget-label');
    const value = el.querySelector('.widget-readout, .mod-active, select');
    controls.push({kind, label: label ? label.innerText.replace(/\u200b/g, '').trim() : '',
                   value: value ? (value.value !== undefined && value.tagName === 'SELECT'
                                   ? value.value : value.innerText.trim()) : null});
  }
  return {
    loading: text.includes('Loading widget'),
    error: text.includes('Error displaying widget') || !!node.querySelector('.widget-error'),
    text: text.slice(0, 400),
    views: node.querySelectorAll('.jupyter-widgets').length,
    sliders: node.querySelectorAll('.widget-slider').length,
    controls,
  };
}
"""

IMAGES_JS = r"""
(path) => {
  const p = window.__ui.panel(path);
  const out = [];
  for (const img of p.content.node.querySelectorAll('.jp-Cell-outputArea img')) {
    const cell = img.closest('[data-uitest-cell]');
    out.push([cell ? cell.getAttribute('data-uitest-cell') : '?', window.__ui.hash(img.src || '')]);
  }
  return out;
}
"""


@dataclass
class Result:
    chapter: str
    required: bool
    ok: bool = True
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    screenshot: Path | None = None

    def fail(self, msg: str) -> None:
        self.ok = False
        self.failures.append(msg)


def log(msg: str) -> None:
    print(f"[ui-test {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def strip_ansi(s: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", s)


# ---------------------------------------------------------------------------- versions


def check_versions() -> tuple[list[str], list[str]]:
    """JupyterLab vs jupyterlab_widgets vs ipywidgets, as installed and as JupyterLab will load
    them. The classic failure: a JupyterLab without the matching widget manager extension
    shows 'Error displaying widget' (or a widget's plain-text repr) instead of the widget."""
    from jupyter_core.paths import jupyter_path
    from jupyterlab_server.config import get_federated_extensions
    from packaging.requirements import Requirement
    from packaging.version import Version

    problems, info = [], []
    v = {}
    for pkg in ("jupyterlab", "ipywidgets", "jupyterlab_widgets", "ipykernel"):
        try:
            v[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            problems.append(f"python package {pkg} is not installed")
    if problems:
        return problems, info
    info.append("jupyterlab " + v["jupyterlab"] + ", ipywidgets " + v["ipywidgets"]
                + ", jupyterlab_widgets " + v["jupyterlab_widgets"] + ", ipykernel " + v["ipykernel"])
    for r in metadata.requires("ipywidgets") or []:
        req = Requirement(r)
        if req.name.replace("_", "-") == "jupyterlab-widgets" and not req.marker:
            if not req.specifier.contains(v["jupyterlab_widgets"], prereleases=True):
                problems.append(f"ipywidgets {v['ipywidgets']} needs {r}, "
                                f"installed jupyterlab_widgets {v['jupyterlab_widgets']}")
    shipped = None  # the manager extension inside the jupyterlab_widgets wheel
    for f in metadata.files("jupyterlab_widgets") or []:
        if str(f).endswith("labextensions/@jupyter-widgets/jupyterlab-manager/package.json"):
            with contextlib.suppress(OSError, ValueError):
                shipped = json.loads(Path(f.locate()).read_text())
    # the copy JupyterLab loads: first on the labextensions path (user, env, system)
    loaded = get_federated_extensions(jupyter_path("labextensions")).get(
        "@jupyter-widgets/jupyterlab-manager")
    if loaded is None:
        problems.append("JupyterLab finds no @jupyter-widgets/jupyterlab-manager extension: "
                        "widgets would show 'Error displaying widget' or plain text "
                        "(pip install jupyterlab_widgets matching ipywidgets)")
        return problems, info
    mv = loaded.get("version", "?")
    info.append(f"lab extension @jupyter-widgets/jupyterlab-manager {mv} from {loaded.get('ext_path')}")
    want = MANAGER_MAJOR.get(Version(v["ipywidgets"]).major)
    with contextlib.suppress(ValueError):
        if want is not None and Version(mv).major != want:
            problems.append(f"ipywidgets {v['ipywidgets']} needs jupyterlab-manager {want}.x, "
                            f"JupyterLab loads {mv} from {loaded.get('ext_path')}")
    if shipped and shipped.get("version") != mv:
        problems.append(f"JupyterLab loads jupyterlab-manager {mv} from {loaded.get('ext_path')}, "
                        f"but jupyterlab_widgets {v['jupyterlab_widgets']} ships "
                        f"{shipped.get('version')}: another copy shadows it")
    rng = (shipped or loaded).get("dependencies", {}).get("@jupyterlab/application", "")
    majors = {int(m) for m in re.findall(r"\^(\d+)", rng)}
    if majors and Version(v["jupyterlab"]).major not in majors:
        problems.append(f"jupyterlab-manager {mv} supports JupyterLab {rng}, "
                        f"installed {v['jupyterlab']}")
    return problems, info


BROWSER_PLUGINS_JS = r"""
() => {
  const app = window.jupyterapp;
  const out = {version: app.version, plugins: {}};
  for (const id of app.listPlugins()) {
    if (id.startsWith('@jupyter-widgets/')) out.plugins[id] = app.isPluginActivated(id);
  }
  return out;
}
"""


def check_browser_versions(page) -> list[str]:
    """What the page really runs: the JupyterLab build and the widget manager plugins."""
    import ipywidgets

    problems = []
    st = page.evaluate(BROWSER_PLUGINS_JS)
    if st["version"] != metadata.version("jupyterlab"):
        problems.append(f"the browser runs JupyterLab {st['version']}, the venv has "
                        f"{metadata.version('jupyterlab')} (a stale build in the app dir?)")
    manager = "@jupyter-widgets/jupyterlab-manager:plugin"
    controls = ("@jupyter-widgets/jupyterlab-manager:controls-"
                + ipywidgets._version.__jupyter_widgets_controls_version__)
    if not st["plugins"].get(manager):
        problems.append(f"{manager} is not active in the browser (plugins: {st['plugins']})")
    if controls not in st["plugins"]:
        problems.append(f"the browser has no {controls} for ipywidgets {ipywidgets.__version__} "
                        f"(plugins: {sorted(st['plugins'])})")
    return problems


# ---------------------------------------------------------------------------- server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(base: str, token: str, path: str, method: str = "GET"):
    req = urllib.request.Request(base + path, method=method,
                                 headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        body = r.read()
    return json.loads(body) if body else None


class Lab:
    """JupyterLab on 127.0.0.1:<free port>, token auth, no browser, isolated settings."""

    def __init__(self, root: Path, out: Path, env: dict[str, str]):
        self.token = secrets.token_hex(24)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.tmp = Path(tempfile.mkdtemp(prefix="medlib-ui-"))
        settings = self.tmp / "lab-settings"
        # no news/update toasts over the screenshots, no network asked for
        notif = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
        notif.parent.mkdir(parents=True)
        notif.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
        env = dict(env, JUPYTER_TOKEN=self.token, JUPYTER_CONFIG_DIR=str(self.tmp / "config"),
                   JUPYTER_RUNTIME_DIR=str(self.tmp / "runtime"),
                   JUPYTERLAB_SETTINGS_DIR=str(settings),
                   JUPYTERLAB_WORKSPACES_DIR=str(self.tmp / "workspaces"))
        self.log_path = out / "jupyter.log"
        self.log = open(self.log_path, "w")  # noqa: SIM115 (closed in stop())
        cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1",
               f"--port={self.port}", "--ServerApp.port_retries=0", f"--ServerApp.root_dir={root}",
               "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers and CI runners
            cmd.append("--allow-root")
        self.proc = subprocess.Popen(cmd, env=env, cwd=root, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 120) -> None:
        t0 = time.time()
        while time.time() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {self.proc.returncode}:\n"
                                   + self.log_path.read_text()[-3000:])
            with contextlib.suppress(OSError, ValueError):
                api(self.base, self.token, "/api/status")
                return
            time.sleep(0.5)
        raise RuntimeError(f"JupyterLab did not answer on {self.base} within {timeout:.0f} s; "
                           f"see {self.log_path}")

    def shutdown_kernels(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            for s in api(self.base, self.token, "/api/sessions") or []:
                api(self.base, self.token, f"/api/sessions/{s['id']}", "DELETE")
        with contextlib.suppress(OSError, ValueError):
            for k in api(self.base, self.token, "/api/kernels") or []:
                api(self.base, self.token, f"/api/kernels/{k['id']}", "DELETE")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.shutdown_kernels()
            self.proc.send_signal(signal.SIGTERM)  # the server shuts its kernels down too
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


# ---------------------------------------------------------------------------- one chapter


def wait_for_panel(page, path: str, timeout: float = 120) -> None:
    """Wait for the notebook and its kernel; accept a kernel-selection dialog if one shows."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        dialog = page.locator(".jp-Dialog")
        if dialog.count():
            log(f"  dialog: {dialog.first.inner_text()[:200]!r} -> accept")
            page.locator(".jp-Dialog .jp-mod-accept").first.click()
        state = page.evaluate(PROGRESS_JS, path)
        if state and state["kernel"] == "idle":
            return
        time.sleep(1)
    raise RuntimeError(f"{path}: notebook or kernel not ready after {timeout:.0f} s "
                       f"(last state {page.evaluate(PROGRESS_JS, path)})")


def run_all(page, path: str, timeout: float) -> dict:
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    t0, last, idle_polls, seen = time.time(), -1.0, 0, False
    while True:
        s = page.evaluate(PROGRESS_JS, path)
        seen = seen or s["running"] > 0 or s["done"] > 0
        idle_polls = idle_polls + 1 if seen and s["running"] == 0 and s["kernel"] == "idle" else 0
        if idle_polls >= 3:
            return s
        if s["kernel"] in ("dead", "autorestarting", "restarting"):
            raise RuntimeError(f"the kernel died ({s['kernel']}) after {s['done']}/{s['code']} "
                               "code cells (out of memory?)")
        if time.time() - last >= 15:
            log(f"  {s['done']}/{s['code']} code cells run, kernel {s['kernel']}")
            last = time.time()
        if time.time() - t0 > timeout:
            raise TimeoutError(f"still running after {timeout:.0f} s ({s['done']}/{s['code']} "
                               f"code cells run, kernel {s['kernel']})")
        time.sleep(1)


def widget_state(page, sel: str, timeout: float = 60) -> dict:
    """Scroll a widget output into view and wait until it has rendered (or failed to)."""
    loc = page.locator(sel)
    loc.scroll_into_view_if_needed()
    t0 = time.time()
    while True:
        st = loc.evaluate(WIDGET_STATE_JS)
        if st["error"] or (st["views"] and not st["loading"]) or time.time() - t0 > timeout:
            return st
        time.sleep(0.5)


def move_slider(page, path: str, sel: str, res: Result, timeout: float = 90) -> None:
    """Press an arrow key on the first slider's handle; a figure must change."""
    slider = page.locator(f"{sel} .widget-slider").first
    label = slider.locator(".widget-label").first.inner_text().strip() or "slider"
    readout = slider.locator(".widget-readout").first
    before_value = readout.inner_text().strip()
    before = page.evaluate(IMAGES_JS, path)
    handle = slider.locator(".noUi-handle").first
    handle.scroll_into_view_if_needed()
    value = before_value
    for key in ("ArrowRight", "ArrowLeft"):  # ArrowLeft if it sat at its maximum
        handle.focus()
        page.keyboard.press(key)
        t0 = time.time()
        while time.time() - t0 < 5 and value == before_value:
            time.sleep(0.2)
            value = readout.inner_text().strip()
        if value != before_value:
            break
    if value == before_value:
        res.fail(f"slider '{label}' did not move on arrow keys (readout stays {before_value})")
        return
    t0 = time.time()
    while time.time() - t0 < timeout:
        after = page.evaluate(IMAGES_JS, path)
        changed = sorted({c for c, h in after if [c, h] not in before})
        if changed and len(after) >= len(before):
            time.sleep(1)  # let an Output widget finish redrawing before the screenshot
            res.notes.append(f"slider '{label}' {before_value} -> {value}: figure in cell "
                             f"{', '.join(changed)} changed ({time.time() - t0:.1f} s)")
            return
        time.sleep(0.5)
    res.fail(f"slider '{label}' moved {before_value} -> {value} but no figure changed "
             f"within {timeout} s")


def check_chapter(page, base: str, token: str, name: str, out: Path, timeout: float,
                  res: Result, version_problems: list[str] | None = None) -> None:
    path = f"{name}.ipynb"
    console: list[str] = []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
    try:
        page.goto(f"{base}/lab/tree/{path}?reset&token={token}", wait_until="domcontentloaded")
        page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell", timeout=120_000)
        wait_for_panel(page, path)
        if version_problems is not None:
            try:
                version_problems += check_browser_versions(page)
            except Exception as e:  # noqa: BLE001 (reported, not fatal to the chapter)
                version_problems.append(f"could not read the browser's plugins: {e}")
        log(f"{name}: kernel idle, running all cells")
        t0 = time.time()
        try:
            s = run_all(page, path, timeout)
            res.notes.append(f"{s['done']}/{s['code']} code cells run in {time.time() - t0:.0f} s")
        except TimeoutError as e:
            res.fail(str(e))
        scan = page.evaluate(SCAN_JS, [path, WIDGET_MIME])
        for e in scan["errors"]:
            where = [ln.strip() for ln in strip_ansi(e["traceback"]).splitlines()
                     if ln.strip().startswith(("Cell In", "File "))]
            res.fail(f"cell {e['cell']} shows an error: {e['ename']}: {e['evalue']}"
                     + (f"\n      at {where[-1]}" if where else ""))
        if scan["unrun"] and not scan["errors"]:
            res.fail(f"code cells never ran: {scan['unrun']}")
        widgets = scan["widgets"]
        if not widgets:
            (res.fail if res.required else res.notes.append)(
                "no widget found" + (" (required by CHAPTERS)" if res.required else ""))
        shot_sel = None
        slider_sel = None
        for w in widgets:
            sel = f'[data-uitest-out="{w["cell"]}-{w["out"]}"]'
            st = widget_state(page, sel)
            where = f"widget in cell {w['cell']}"
            if st["error"]:
                res.fail(f"{where}: {st['text'][:200]!r}")
            elif st["loading"]:
                res.fail(f"{where}: still 'Loading widget...' after 60 s")
            elif not st["views"]:
                res.fail(f"{where}: no widget view in the DOM, the output shows "
                         f"{st['text'][:150]!r} (widget manager extension missing?)")
            else:
                desc = ", ".join(f"{c['kind']}"
                                 + (f" '{c['label']}'" if c["label"] else "")
                                 + (f"={c['value']}" if c["value"] else "")
                                 for c in st["controls"]) or f"{st['views']} views"
                res.notes.append(f"{where} renders: {desc}")
                shot_sel = shot_sel or sel
                if st["sliders"] and slider_sel is None:
                    slider_sel = sel
        if slider_sel:
            move_slider(page, path, slider_sel, res)
        elif widgets:
            res.notes.append("no slider among the rendered widgets: nothing to move")
        shot = out / f"{name}.png"
        if shot_sel:
            page.locator(shot_sel).evaluate("n => n.scrollIntoView({block: 'end'})")
            time.sleep(0.5)
        page.screenshot(path=str(shot))
        res.screenshot = shot
        with contextlib.suppress(Exception):  # the executed copy, for a look afterwards
            page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
            time.sleep(1)
    finally:
        (out / f"{name}.console.log").write_text("\n".join(console) + "\n")
    widget_console = [c for c in console if c.startswith(("error", "pageerror"))
                      and re.search(r"widget|model|comm", c, re.I)]
    if widget_console and not res.ok:
        res.notes.append("browser console: " + " | ".join(widget_console[:3])[:400])


# ---------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("chapters", nargs="*", default=list(CHAPTERS),
                    help=f"chapters to check (default: all of {', '.join(CHAPTERS)})")
    ap.add_argument("--out", default=str(REPO / "build" / "ui"), help="screenshots and logs")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per chapter run")
    args = ap.parse_args(argv)
    unknown = [c for c in args.chapters if c not in CHAPTERS]
    if unknown:
        print(f"unknown chapters {unknown}; known: {list(CHAPTERS)}", file=sys.stderr)
        return 2
    if not os.access(CHROMIUM, os.X_OK):
        print(f"ui-test: no Chromium at {CHROMIUM} (apt-get install chromium, or set "
              "MEDLIB_UI_CHROMIUM)", file=sys.stderr)
        return 2
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("ui-test: playwright missing: .venv/bin/pip install -e '.[dev,ui]'", file=sys.stderr)
        return 2

    t_start = time.time()
    out = Path(args.out).resolve()
    work = out / "work"
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(out / "runs", ignore_errors=True)  # MEDLIB_RUNS of the previous ui-test
    work.mkdir(parents=True)
    for c in args.chapters:  # the browser edits (and may autosave) copies, never notebooks/
        shutil.copy2(NOTEBOOKS / f"{c}.ipynb", work / f"{c}.ipynb")
        (out / f"{c}.png").unlink(missing_ok=True)

    env = dict(os.environ, MEDLIB_PROFILE="smoke", MEDLIB_OFFLINE="1",
               MEDLIB_RUNS=str(out / "runs"), PYTHONUNBUFFERED="1")
    for var in ("MEDLIB_HEADLESS", "MEDLIB_RUN_DIR", "MPLBACKEND"):  # widgets must be live
        env.pop(var, None)
    if not env.get("MEDLIB_DATA") and (REPO.parent / "shared" / "datasets").is_dir():
        env["MEDLIB_DATA"] = str(REPO.parent / "shared" / "datasets")
    log(f"MEDLIB_DATA={env.get('MEDLIB_DATA', '(unset)')} MEDLIB_PROFILE=smoke, out={out}")

    results = [Result(c, CHAPTERS[c]) for c in args.chapters]
    version_problems: list[str] = []
    version_info: list[str] = []
    lab = Lab(work, out, env)
    try:
        lab.wait_ready()
        log(f"JupyterLab up on {lab.base} after {time.time() - t_start:.0f} s")
        version_problems, version_info = check_versions()
        for line in version_info:
            log(line)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                         headless=True)
            log(f"Chromium {browser.version}")
            context = browser.new_context(viewport={"width": 1280, "height": 1000})
            context.add_init_script(INIT_JS)
            for k, res in enumerate(results):
                t0 = time.time()
                page = context.new_page()
                try:
                    check_chapter(page, lab.base, lab.token, res.chapter, out, args.timeout, res,
                                  version_problems if k == 0 else None)
                except Exception as e:  # a broken page must not hide the other chapters
                    res.fail(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
                    with contextlib.suppress(Exception):
                        page.screenshot(path=str(out / f"{res.chapter}.png"))
                        res.screenshot = out / f"{res.chapter}.png"
                finally:
                    res.seconds = time.time() - t0
                    page.close()
                    lab.shutdown_kernels()  # one kernel at a time
                log(f"{res.chapter}: {'ok' if res.ok else 'FAILED'} in {res.seconds:.0f} s")
            browser.close()
    finally:
        lab.stop()

    print("\n=== ui-test summary " + "=" * 60)
    if version_problems:
        print("FAIL versions:")
        for p in version_problems:
            print(f"    - {p}")
    else:
        print("ok   versions: JupyterLab, jupyterlab_widgets and ipywidgets agree")
    for line in version_info:
        print(f"    - {line}")
    for r in results:
        need = "widget required" if r.required else "widgets optional"
        print(f"{'ok  ' if r.ok else 'FAIL'} {r.chapter} ({need}, {r.seconds:.0f} s)")
        for f in r.failures:
            print(f"    - FAILED: {f}")
        for n in r.notes:
            print(f"    - {n}")
        if r.screenshot:
            print(f"    - screenshot: {r.screenshot.relative_to(REPO) if r.screenshot.is_relative_to(REPO) else r.screenshot}")
    ok = not version_problems and all(r.ok for r in results)
    print(f"ui-test {'passed' if ok else 'FAILED'} in {time.time() - t_start:.0f} s "
          f"(logs: {out}/jupyter.log, {out}/<chapter>.console.log)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
