"""Imports point one way: the package's modules, read with ``ast`` (nothing is imported), form no import
cycle, and no module imports one of a higher layer.

The layers, lowest first (a module may import its own layer and the ones below it):

    base    ppasr/__init__ (environment set before paddle loads), logger, errors, utils
    data    audio, text, features, manifests, augmentation, datasets, corpus preparation
    model   the networks, their config and checkpoints
    decode  greedy and beam search, language models
    train   the trainer, its options and state, evaluation
    serve   export, inference backends, the predictor, server and desktop window
    demo    the synthetic eSpeak NG corpora (they write annotations with data.prepare)
    api     predict.py: the Python API over serve
    scripts cli.py (every flag), scripts.py and jobs.py (the programs): they compose everything below

Every import counts: those inside functions (scripts import lazily so that --help is quick) and those
under ``if TYPE_CHECKING:`` are dependencies all the same.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from helpers import REPO

LAYERS = (
    ("base", ("ppasr", "ppasr.logger", "ppasr.errors", "ppasr.utils")),
    ("data", ("ppasr.data",)),
    ("model", ("ppasr.model",)),
    ("decode", ("ppasr.decode",)),
    ("train", ("ppasr.train",)),
    ("serve", ("ppasr.serve",)),
    ("demo", ("ppasr.demo",)),
    ("api", ("ppasr.predict",)),
    ("scripts", ("ppasr.cli", "ppasr.scripts", "ppasr.jobs")),  # jobs: eval/tune, from the decode branch
)


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(root: Path) -> dict[str, set[str]]:
    """Module → the package's modules it imports (``from pkg import mod`` counts as importing ``mod``)."""
    modules = {module_name(path, root): path for path in sorted(root.rglob("*.py"))}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the package, one level up per extra dot
                    anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                submodules = {f"{base}.{alias.name}" for alias in node.names} & modules.keys()
                targets.update(submodules or {base})
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def layer_of(module: str) -> int:
    """Index in LAYERS of the longest prefix that owns ``module``."""
    owners = [(len(prefix), index) for index, (_, prefixes) in enumerate(LAYERS) for prefix in prefixes
              if module == prefix or module.startswith(prefix + ".")]
    if not owners:
        raise AssertionError(f"{module} belongs to no layer: add it to LAYERS in {__file__}")
    return max(owners)[1]


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
                  for module, targets in graph.items() for target in targets
                  if layer_of(target) > layer_of(module))


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while not component or component[-1] != node:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def test_the_package_has_no_import_cycle():
    assert cycles(imports(REPO / "ppasr")) == []


def test_no_module_imports_a_higher_layer():
    assert upward_imports(imports(REPO / "ppasr")) == []


def test_every_module_has_a_layer():
    for module in imports(REPO / "ppasr"):
        layer_of(module)


@pytest.fixture
def toy_package(tmp_path) -> Path:
    """A package with one cycle (data.a <-> data.b, one of them a lazy import) and one upward import."""
    root = tmp_path / "ppasr"
    (root / "data").mkdir(parents=True)
    (root / "serve").mkdir()
    for init in (root / "__init__.py", root / "data/__init__.py", root / "serve/__init__.py"):
        init.write_text("")
    (root / "data/a.py").write_text("from ppasr.data import b\n")
    (root / "data/b.py").write_text("def f():\n    from .a import g\n")
    (root / "data/c.py").write_text("import ppasr.serve.server\n")
    (root / "serve/server.py").write_text("from ppasr.data.c import x\nfrom ppasr import logger\n")
    (root / "logger.py").write_text("")
    return root


def test_the_checks_find_a_cycle_and_an_upward_import(toy_package):
    graph = imports(toy_package)
    assert graph["ppasr.data.b"] == {"ppasr.data.a"} and graph["ppasr.serve.server"] == {"ppasr.data.c",
                                                                                          "ppasr.logger"}
    assert cycles(graph) == [["ppasr.data.a", "ppasr.data.b"], ["ppasr.data.c", "ppasr.serve.server"]]
    assert upward_imports(graph) == ["ppasr.data.c (data) imports ppasr.serve.server (serve)"]


SCRIPTS = ("create_data.py", "train.py", "eval.py", "export_model.py", "infer_path.py", "infer_server.py",
           "infer_gui.py", "tools/tune.py", "tools/build_lm.py", "tools/generate_audio.py", "download_data/noise.py")
PARSE_ONLY = """
import runpy, sys
sys.argv = [sys.argv[1], "--help"]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit:
    pass
print("LOADED:", " ".join(m for m in ("paddle", "onnxruntime") if m in sys.modules))
"""


def test_scripts_parse_their_flags_before_loading_paddle():
    """--help and flag errors are instant: no script loads paddle or onnxruntime before its flags parse."""
    import subprocess
    import sys

    for script in SCRIPTS:
        proc = subprocess.run([sys.executable, "-c", PARSE_ONLY, str(REPO / script)], capture_output=True, text=True,
                              timeout=120, cwd=REPO)
        assert proc.stdout.strip().endswith("LOADED:"), f"{script}: {proc.stdout[-300:]}{proc.stderr[-2000:]}"


# Modules below the scripts that may call print: the script boundary's own output, and (this round)
# files other branches are rewriting; their lines move to the logger's PLAIN lines as in prepare.py.
PRINTS_ALLOWED = {
    "ppasr.errors",  # run_main: the one `error: …` line on stderr
    "ppasr.utils",  # print_arguments: PPASR's configuration block, printed by the scripts
    "ppasr.train.evaluation", "ppasr.serve.infer", "ppasr.serve.gui",  # eval/tune, infer_path, GUI output
}


def test_library_code_logs_instead_of_printing():
    root = REPO / "ppasr"
    printing = sorted(
        f"{module_name(path, root)}:{node.lineno}" for path in root.rglob("*.py")
        if layer_of(module_name(path, root)) < len(LAYERS) - 1 and module_name(path, root) not in PRINTS_ALLOWED
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print")
    assert printing == [], "library code logs through ppasr.logger (PLAIN for PPASR's unprefixed lines)"
