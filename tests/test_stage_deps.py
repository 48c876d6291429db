"""Every project file a DVC stage runs is a declared dep of that stage, computed from the code.

DVC re-runs a stage only when a declared dep changes; a file the stage imports but does not
declare would leave stale outputs that ``dvc status`` calls up to date.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from dualmic.core.imports import code_fingerprint, import_closure
from dualmic.learn import checkpoint

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"


def stage_deps() -> dict[str, tuple[Path, list[str]]]:
    """stage name -> (its script, its declared deps), foreach stages expanded per split."""
    pipeline = yaml.safe_load((REPO / "dvc.yaml").read_text())
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    out = {}
    for name, stage in pipeline["stages"].items():
        if "foreach" in stage:
            keys = list(params["simulate"]["splits"])
            assert stage["foreach"] == "${simulate.splits}", name
            items = [(f"{name}@{k}", stage["do"], k) for k in keys]
        else:
            items = [(name, stage, None)]
        for full, body, key in items:
            deps = [d.replace("${key}", key) if key else d for d in body["deps"]]
            script = re.search(r"python (stages/\w+\.py)", body["cmd"])
            assert script, f"{full}: cmd {body['cmd']!r} runs no stages/*.py script"
            assert body["cmd"].startswith("PYTHONPATH=src "), f"{full} must run this repo's src/"
            out[full] = (REPO / script.group(1), deps)
    return out


def uncovered(files: set[Path], deps: list[str], root: Path = REPO) -> list[str]:
    """The files (repo-relative) that neither are a dep nor lie in a folder dep."""
    declared = [(root / d).resolve() for d in deps]
    missing = []
    for f in sorted(files):
        if not any(f == d or d in f.parents for d in declared):
            missing.append(f.relative_to(root).as_posix())
    return missing


STAGES = stage_deps()


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_imported_project_file_is_a_declared_dep(stage):
    script, deps = STAGES[stage]
    closure = import_closure(script, SRC)
    assert script.resolve() in closure
    assert any(p.name == "__init__.py" and p.parent.name == "dualmic" for p in closure)
    missing = uncovered(closure, deps)
    assert not missing, f"stage {stage} imports {', '.join(missing)} but dvc.yaml does not declare it"


def test_every_declared_code_dep_exists():
    for stage, (_, deps) in STAGES.items():
        for d in deps:
            if d.startswith(("src/", "stages/")):
                assert (REPO / d).exists(), f"stage {stage} declares {d}, which does not exist"


def test_an_undeclared_import_is_caught(tmp_path):
    """The check is not vacuous: a stage script importing one more module fails it."""
    script, deps = STAGES["train"]
    extra = tmp_path / "stages" / "train.py"
    extra.parent.mkdir()
    extra.write_text(script.read_text() + "\nfrom dualmic.scoring import metrics  # noqa\n")
    closure = import_closure(extra, SRC)
    missing = uncovered(closure - {extra.resolve()}, deps)
    assert "src/dualmic/scoring/metrics.py" in missing and "src/dualmic/scoring/__init__.py" in missing


def test_imports_inside_functions_and_from_package_imports_count(tmp_path):
    code = tmp_path / "x.py"
    code.write_text(
        "def f():\n    from dualmic.sofa import info  # noqa\n\nfrom dualmic.scoring import plots  # noqa\n"
    )
    names = {p.relative_to(SRC).as_posix() for p in import_closure(code, SRC) if SRC in p.parents}
    assert {"dualmic/sofa/info.py", "dualmic/sofa/layout.py", "dualmic/scoring/plots.py"} <= names
    assert {"dualmic/scoring/metrics.py", "dualmic/core/files.py", "dualmic/__init__.py"} <= names


def test_checkpoint_fingerprint_hashes_the_train_stage_closure(tmp_path):
    """The checkpoint fingerprint covers exactly the code the train stage's deps cover."""
    closure = import_closure(checkpoint.TRAINING_MODULE, SRC)
    _, deps = STAGES["train"]
    assert not uncovered(closure, deps)
    # a copy of the package: editing any file of the closure changes the fingerprint
    import shutil

    copy = tmp_path / "src"
    shutil.copytree(SRC / "dualmic", copy / "dualmic", ignore=shutil.ignore_patterns("__pycache__"))
    before = code_fingerprint(checkpoint.TRAINING_MODULE, copy)
    assert before == code_fingerprint(checkpoint.TRAINING_MODULE, SRC)
    for rel in ("dualmic/core/labels.py", "dualmic/learn/validation.py", "dualmic/core/files.py"):
        target = copy / rel
        original = target.read_text()
        target.write_text(original + "\n# changed\n")
        assert code_fingerprint(checkpoint.TRAINING_MODULE, copy) != before, rel
        target.write_text(original)
    # a file outside the closure does not
    (copy / "dualmic" / "scoring" / "plots.py").write_text("# unrelated\n")
    assert code_fingerprint(checkpoint.TRAINING_MODULE, copy) == before
