"""`dvc plots show` makes a page that draws every plot with no network.

The page comes from .dvc/plots/offline.html (set in .dvc/config), which inlines Vega, Vega-Lite
and Vega-Embed instead of loading them from a CDN. The plots and their data are copied from the
repo into a fresh git + DVC project, `dvc plots show` writes the page there, and headless
Chromium, with every host name unresolvable, must draw a chart into each plot's div.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from dvc_render.base import Renderer
from tests_support import REPO, git_commit, run

CHROMIUM = shutil.which("chromium")
LIBRARIES = {"vega", "vega-lite", "vega-embed"}


def _top_level_plot_paths(dvc_yaml: dict) -> tuple[list[str], set[str]]:
    """The plot ids of dvc.yaml's `plots:` and every file those plots read (data and templates)."""
    ids: list[str] = []
    files: set[str] = set()
    for entry in dvc_yaml.get("plots") or []:
        if isinstance(entry, str):
            ids.append(entry)
            files.add(entry)
            continue
        for plot_id, props in entry.items():
            props = props or {}
            ids.append(plot_id)
            named = [axis for axis in (props.get("x"), props.get("y")) if isinstance(axis, dict)]
            files.update(path for axis in named for path in axis)
            if not named:
                files.add(plot_id)  # the id is the data file
            template = props.get("template")
            if template and (REPO / template).is_file():
                files.add(template)
    return ids, files


def _stage_plot_paths() -> set[str]:
    """Plot outputs of the stages, with foreach and ${...} resolved the way DVC resolves them."""
    from dvc.repo import Repo

    with Repo(str(REPO)) as repo:
        return {out.def_path for stage in repo.index.stages for out in stage.outs if out.plot}


def _missing(path: Path) -> bool:
    if path.is_dir():
        return not any(p.is_file() for p in path.rglob("*"))
    return not path.is_file()


class _PlotDivs(HTMLParser):
    """The top-level divs of <body> (one per plot, as dvc_render writes them) and what is in each."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.plots: dict[str, dict] = {}
        self.script_srcs: list[str] = []
        self.inline_libs: dict[str, int] = {}  # data-lib name -> characters of inlined code
        self._in_body = False
        self._depth = 0  # open <div>s inside <body>
        self._plot: dict | None = None  # the plot div being read
        self._script: str | None = None  # data-lib of the <script> being read ("" if none)
        self._error: list[str] | None = None  # text of the error message being read

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = (attrs.get("class") or "").split()
        if tag == "script":
            if attrs.get("src"):
                self.script_srcs.append(attrs["src"])
            self._script = (attrs.get("data-lib") or "").rsplit("@", 1)[0]
        elif tag == "body":
            self._in_body = True
        elif tag == "div" and self._in_body:
            if self._depth == 0 and attrs.get("id"):
                new = {"vega": False, "imgs": [], "marks": 0, "errors": []}
                self._plot = self.plots.setdefault(attrs["id"], new)
            self._depth += 1
        if self._plot is None:
            return
        if tag in ("svg", "canvas") and "marks" in classes:
            self._plot["marks"] += 1
        elif tag == "img":
            self._plot["imgs"].append(attrs.get("src") or "")
        elif "vega-error" in classes:
            self._error = []

    def handle_endtag(self, tag):
        if tag == "script":
            self._script = None
        elif tag == "pre" and self._error is not None and self._plot is not None:
            self._plot["errors"].append("".join(self._error).strip())
            self._error = None
        elif tag == "div" and self._in_body and self._depth:
            self._depth -= 1
            if self._depth == 0:
                self._plot = None

    def handle_data(self, data):
        if self._script:
            self.inline_libs[self._script] = self.inline_libs.get(self._script, 0) + len(data)
        elif self._script == "" and self._plot is not None and "vegaEmbed(" in data:
            self._plot["vega"] = True
        elif self._error is not None:
            self._error.append(data)


def _parse(html: str) -> _PlotDivs:
    parser = _PlotDivs()
    parser.feed(html)
    parser.close()
    return parser


@pytest.fixture(scope="module")
def plots_page(tmp_path_factory) -> tuple[Path, list[str]]:
    """A fresh project holding only the plots' files; `dvc plots show` has written its page."""
    dvc_yaml = yaml.safe_load((REPO / "dvc.yaml").read_text())
    plot_ids, files = _top_level_plot_paths(dvc_yaml)
    files |= _stage_plot_paths()
    missing = sorted(f for f in files if _missing(REPO / f))
    if missing:
        pytest.fail(
            "plot data named in dvc.yaml is missing from the repo (run the stages that write it, "
            "`dvc repro`, or the benchmark that does): " + ", ".join(missing),
            pytrace=False,
        )

    root = tmp_path_factory.mktemp("plots_offline")
    for name in ("dvc.yaml", "params.yaml", ".dvc/config", ".dvc/plots", *sorted(files)):
        src, dst = REPO / name, root / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True)
        else:
            shutil.copy(src, dst)
    run(["git", "init", "-q"], root)
    git_commit(root, "plots only")

    shown = run(["dvc", "plots", "show", "--json"], root)
    errors = json.loads(shown.stdout).get("errors") or []
    assert not errors, "dvc could not load some plots:\n" + "\n".join(
        f"  {e.get('source') or e.get('name')}: {e.get('msg') or e.get('type')}" for e in errors
    )
    out = root / "plots_html"
    run(["dvc", "plots", "show", "-o", str(out)], root)
    return out / "index.html", plot_ids


def test_page_inlines_vega_and_loads_nothing_from_the_network(plots_page):
    page, plot_ids = plots_page
    parsed = _parse(page.read_text(encoding="utf-8"))

    remote = [s for s in parsed.script_srcs if s.startswith(("http:", "https:", "//"))]
    assert not remote, f"the page loads scripts from the network: {remote}"
    too_small = {lib for lib in LIBRARIES if parsed.inline_libs.get(lib, 0) < 10_000}
    assert not too_small, (
        f"not inlined in the page: {sorted(too_small)} (is .dvc/config's html_template set?)"
    )

    div_ids = set(parsed.plots)
    lost = [p for p in plot_ids if Renderer.remove_special_chars(p) not in div_ids]
    assert not lost, f"plots declared in dvc.yaml but not on the page: {lost}"
    for div_id, plot in parsed.plots.items():
        for src in plot["imgs"]:
            assert (page.parent / src).is_file(), f"{div_id}: image {src} not written"


@pytest.mark.skipif(
    CHROMIUM is None, reason="needs `chromium` on PATH (`make test` installs it; apt-get install chromium)"
)
def test_every_plot_renders_in_a_browser_without_network(plots_page, tmp_path):
    page, _ = plots_page
    written = {k: v for k, v in _parse(page.read_text(encoding="utf-8")).plots.items() if v["vega"]}
    assert written, "dvc wrote no Vega plot"

    args = [
        CHROMIUM,
        "--headless",
        "--disable-gpu",
        "--no-sandbox",  # root in containers and CI
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--host-resolver-rules=MAP * ~NOTFOUND",  # no host name resolves: any CDN load would fail
        "--virtual-time-budget=20000",
        "--dump-dom",
        page.as_uri(),
    ]
    env = dict(os.environ, HOME=str(tmp_path))  # keep chromium's caches and crash dumps out of ~
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0 and "</html>" in proc.stdout, f"chromium failed:\n{proc.stderr[-4000:]}"

    rendered = _parse(proc.stdout).plots
    failed = {i: rendered.get(i, {}).get("errors") for i in written if rendered.get(i, {}).get("errors")}
    assert not failed, f"Vega-Embed reported errors: {failed}"
    blank = sorted(i for i in written if not rendered.get(i, {}).get("marks"))
    drawn = len(written) - len(blank)
    assert drawn == len(written), f"{drawn} of {len(written)} plots drawn; blank: {blank}"
