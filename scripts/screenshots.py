"""Screenshots of TensorBoard as a user sees it, for the README (``docs/*.png``).

TensorBoard is a single-page app: a plain ``chromium --screenshot`` often captures blank charts. This
script starts ``tensorboard --logdir LOGDIR`` and a headless Chromium, drives Chromium through its
DevTools protocol, waits until the cards have rendered, then captures each view.

    pip install -e ".[docs]"           # websocket-client
    python scripts/screenshots.py outputs/ --out docs/

Needs Chromium (Debian: ``apt-get install chromium``; ``--chromium PATH`` otherwise). Every process
it starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

CLOSE_SETTINGS = "document.querySelector('button[aria-label=\"Close side pane\"]')?.click()"
# The legacy dashboards live in shadow DOMs: find elements through them.
DEEP = ("function deep(root, sel, out = []) { root.querySelectorAll(sel).forEach(e => out.push(e)); "
        "root.querySelectorAll('*').forEach(e => e.shadowRoot && deep(e.shadowRoot, sel, out)); return out; };")
ACTUAL_READY = ("(() => { " + DEEP + " return deep(document, 'paper-checkbox').some(c => /actual/i.test(c.textContent))"
                " && deep(document, 'img').length > 0; })()")
ACTUAL_SIZE = DEEP + "deep(document, 'paper-checkbox').find(c => /actual/i.test(c.textContent)).click()"
CARDS = "document.querySelectorAll('{}').length >= {}"
# HParams: switch to the parallel-coordinates view (a paper-tab in the dashboard's shadow DOM)
PARALLEL = DEEP + "deep(document, 'paper-tab').find(t => /parallel/i.test(t.textContent)).click()"
PARALLEL_READY = "(() => { " + DEEP + " return deep(document, 'paper-tab').some(t => /parallel/i.test(t.textContent)); })()"
# Custom scalars: the report's margin charts, scrolled to the top (categories are tf-category-pane)
REPORT_BANDS = (DEEP + "const pane = deep(document, 'tf-category-pane').find(p => /report: validation/"
                ".test(p.textContent)); pane && pane.scrollIntoView()")


def categories(n: int) -> str:
    """JavaScript: true once the custom-scalars dashboard shows ``n`` categories."""
    return "(() => { " + DEEP + f" return deep(document, 'tf-category-pane').length >= {n}; }})()"



# name -> (page, JavaScript that is true once it has rendered, JavaScript to run then, viewport,
#          Time Series card width in px or None for TensorBoard's default)
SHOTS = {
    # per-level log10 gradient norms: the three variants overlaid on one card per level
    "tb_grad_levels": ("/?tagFilter=%5Egrad_level%2F&runFilter=denoise&smoothing=0#timeseries",
                       CARDS.format("scalar-card-component", 6), CLOSE_SETTINGS, (1400, 1000), None),
    # validation metrics and losses from step 0; CE (classify) and MSE (denoise) on separate cards
    "tb_metrics": ("/?tagFilter=%5E(metric%2Fval_(psnr%7Cacc)%24%7Closs%2F)&smoothing=0#timeseries",
                   CARDS.format("scalar-card-component", 4), CLOSE_SETTINGS, (1400, 1000), None),
    # what opens: Time Series, groups by name -- grad_level, grad_norm/total, grad_ratio, hparams, loss, metric ...
    "tb_landing_series": ("/?smoothing=0#timeseries", CARDS.format("scalar-card-component", 6), CLOSE_SETTINGS,
                          (1400, 1000), None),
    # custom scalars: loss and metrics, one chart per level, then the per-layer detail collapsed
    "tb_landing": ("/#custom_scalars", categories(4), "", (1400, 1000), None),
    # every run of the folder with its headline score, whatever its task
    "tb_hparams": ("/#hparams", "true", "", (1900, 520), None),
    # the parallel-coordinates view: one line per run, none dropped
    "tb_hparams_parallel": ("/#hparams", PARALLEL_READY, PARALLEL, (1400, 800), None),
    # the report's seed bands: mean and 95 % CI per group as margin charts
    "tb_report_bands": ("/#custom_scalars&regexInput=_report", categories(4), REPORT_BANDS, (1400, 1000), None),
    # the report's cross-variant figure, as a TensorBoard run of the sweep folder
    "tb_report": ("/#images&tagFilter=report%2Fgrad_norm_depth&regexInput=_report", ACTUAL_READY, ACTUAL_SIZE,
                  (2000, 820), None),
    # one run's gradient-flow heat map (log10 norm, layers x logged steps) on the fixed colour scale
    "tb_grad_flow": ("/#images&tagFilter=grad_flow%2Fheatmap&regexInput=unet_concat", ACTUAL_READY, ACTUAL_SIZE,
                     (1400, 900), None),
    # skipbench analyze lesion: metric and loss vs k blocks deleted, every variant's <run>/analysis/lesion on one card
    "tb_lesion": ("/?tagFilter=%5Elesion%2F(metric%7Closs)_vs_k%24&runFilter=analysis%2Flesion&smoothing=0#timeseries",
                  CARDS.format("scalar-card-component", 2), CLOSE_SETTINGS, (1400, 720), None),
    # skipbench report on analysed runs: the variants' landscape contours side by side on the task's fixed scale
    "tb_landscape": ("/#images&tagFilter=report%2Flandscape_contours&regexInput=_report", ACTUAL_READY, ACTUAL_SIZE,
                     (1900, 720), None),
    # captioned sample grids: a denoise run and a classify run
    "tb_samples": ("/#images&tagFilter=%5Esamples%2F&regexInput=(1_denoise%7Cclassify)", ACTUAL_READY, ACTUAL_SIZE,
                   (1400, 900), None),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"screenshots: {url} did not answer in {timeout:.0f} s")
            time.sleep(0.5)


class Page:
    """One Chromium tab through the DevTools protocol (a websocket of JSON messages)."""

    def __init__(self, debug_port: int) -> None:
        import websocket  # websocket-client, the [docs] extra

        req = urllib.request.Request(f"http://127.0.0.1:{debug_port}/json/new?about:blank", method="PUT")
        with urllib.request.urlopen(req, timeout=10) as r:
            target = json.loads(r.read())
        self.ws = websocket.create_connection(target["webSocketDebuggerUrl"], timeout=60, suppress_origin=True)
        self.next_id = 0

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:  # skip events until our answer comes
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def evaluate(self, expression: str):
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True).get("result", {}).get("value")

    def shot(self, url: str, ready: str, action: str, path: Path, width: int, height: int, card_width: int | None,
             timeout: float = 90, settle: float = 10) -> None:
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        # TensorBoard keeps its settings in the origin's localStorage: set the card width before loading
        self.call("Page.navigate", url=url.split("/?")[0].split("/#")[0] + "/data/runs")
        time.sleep(1)
        setting = json.dumps({"cardMinWidth": card_width}) if card_width else None
        self.evaluate(f"localStorage.setItem('_tb_global_settings', {json.dumps(setting)})" if setting
                      else "localStorage.removeItem('_tb_global_settings')")
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + timeout
        while not self.evaluate(f"!!({ready})"):
            if time.monotonic() > deadline:
                print(f"screenshots: {path.name}: the page did not render in {timeout:.0f} s; capturing anyway",
                      file=sys.stderr)
                break
            time.sleep(0.5)
        if action:
            self.evaluate(action)
        time.sleep(settle)  # charts draw after their cards appear
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("logdir", help="the folder to show, e.g. outputs/")
    p.add_argument("--out", default="docs", help="folder for the PNG files (default: docs)")
    p.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    p.add_argument("--only", default=None, help=f"comma-separated subset of {','.join(SHOTS)}")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tb_port, debug_port = free_port(), free_port()
    tensorboard = shutil.which("tensorboard") or str(Path(sys.executable).with_name("tensorboard"))
    procs = []
    with tempfile.TemporaryDirectory() as profile:
        try:
            procs.append(subprocess.Popen([tensorboard, "--logdir", args.logdir, "--host", "127.0.0.1",
                                           "--port", str(tb_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            procs.append(subprocess.Popen([args.chromium, "--headless", "--no-sandbox", "--disable-gpu",
                                           "--disable-background-networking", "--disable-component-update",
                                           "--no-first-run", "--disable-sync", f"--user-data-dir={profile}",
                                           f"--remote-debugging-port={debug_port}", "about:blank"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            base = f"http://127.0.0.1:{tb_port}"
            wait_http(f"{base}/data/runs")
            wait_http(f"http://127.0.0.1:{debug_port}/json/version")
            time.sleep(3)  # TensorBoard reads the event files lazily
            page = Page(debug_port)
            for name in (args.only.split(",") if args.only else SHOTS):
                url, ready, action, (width, height), card_width = SHOTS[name]
                page.shot(base + url, ready, action, out / f"{name}.png", width, height, card_width)
                print(f"wrote {out / f'{name}.png'}")
        finally:
            for proc in reversed(procs):
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
