"""The package as others see it: one installed `nstvid`, imports that only run downward, modules and
functions a newcomer can read, and a wheel that installs and runs from anywhere."""
from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import CONTENT, ROOT, STYLE

pytestmark = pytest.mark.xdist_group("structure")  # the wheel is built once, for two tests
PACKAGE_FILES = [ROOT / "__init__.py", ROOT / "__main__.py", ROOT / "cli.py",
                 *sorted((ROOT / "pipeline").rglob("*.py"))]
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60
# Longer than the limits, and why.
LONG_FUNCTIONS: dict[str, str] = {}
# Layers, top to bottom: a module may import from its own layer or lower ones only, and the
# graph has no cycles. Keys are module names under nstvid; the longest matching prefix decides.
LAYERS = {
    "__main__": 6, "cli": 5, "__init__": 5,
    "pipeline.api": 4,
    "pipeline.folder": 3, "pipeline.cluster": 3, "pipeline.preview": 3,
    "pipeline.video": 2, "pipeline.image_job": 2, "pipeline.backend": 2, "pipeline.report": 2,
    "pipeline.prepare": 1, "pipeline.batching": 1, "pipeline.outputs": 1, "pipeline.frames": 1,
    "pipeline.gatys": 1, "pipeline.optimizers": 1, "pipeline.cuda_graphs": 1, "pipeline.style_targets": 1,
    "pipeline.estimate": 1, "pipeline.sheet": 1, "pipeline.plot": 1, "pipeline.engine": 1, "pipeline.features": 1,
    "pipeline.losses": 1, "pipeline.color": 1, "pipeline.flow": 1, "pipeline.media": 1, "pipeline.deliver": 1,
    "pipeline.polish": 1,
    "pipeline.errors": 0, "pipeline.progress": 0, "pipeline.settings": 0, "pipeline.files": 0, "pipeline": 0,
}


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" and len(rel.parts) > 1 else rel.parts
    return ".".join(parts)


def layer(name: str) -> int:
    best = max((k for k in LAYERS if name == k or name.startswith(k + ".")), key=len)
    return LAYERS[best]


def imports_of(path: Path) -> set[str]:
    """Modules of the package that path imports (relative imports resolved), by module name."""
    name = module_name(path)
    if path.parent == ROOT:
        package = ""  # the package root: __init__.py, __main__.py, cli.py
    else:
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    known = {module_name(p) for p in PACKAGE_FILES}
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.split(".") if package else []
            base = base[:len(base) - (node.level - 1)] if node.level > 1 else base
            target = ".".join(base + ([node.module] if node.module else []))
            candidates = [f"{target}.{a.name}" if target else a.name for a in node.names] + [target]
            found |= {c for c in candidates if c in known}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("nstvid"):
            found.add(node.module.removeprefix("nstvid").lstrip("."))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in ("pipeline", "cli"):
                    found.add("top-level " + alias.name)  # never: the package is nstvid
    return found - {name}


def test_imports_run_downward_without_cycles():
    graph = {module_name(p): imports_of(p) for p in PACKAGE_FILES}
    upward = [(a, b) for a, targets in graph.items() for b in targets
              if b.startswith("top-level") or layer(b) > layer(a)]
    assert not upward, upward
    done, visiting = set(), []

    def visit(node: str) -> None:
        if node in visiting:
            raise AssertionError("import cycle: " + " -> ".join(visiting[visiting.index(node):] + [node]))
        if node in done:
            return
        visiting.append(node)
        for target in sorted(graph.get(node, ())):
            visit(target)
        visiting.pop()
        done.add(node)

    for node in sorted(graph):
        visit(node)


def test_modules_and_functions_stay_readable():
    long_modules = {module_name(p): n for p in PACKAGE_FILES
                    if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long_modules, long_modules
    long_functions = {}
    for path in PACKAGE_FILES:
        tree = ast.parse(path.read_text())
        owners = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                owner = owners.get(node)
                prefix = f".{owner.name}" if isinstance(owner, (ast.ClassDef, ast.FunctionDef)) else ""
                name = f"{module_name(path)}{prefix}.{node.name}"
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES and name not in LONG_FUNCTIONS:
                    long_functions[name] = lines
    assert not long_functions, long_functions


def test_each_option_is_declared_once():
    """Options live in one table (Settings / RunOptions fields with a Flag): cli.py names no flag
    of the table, no help text writes a default by hand, and presets hold only what differs."""
    import dataclasses
    import tomllib

    from nstvid.pipeline import settings

    table_flags = {each for name, flag, _ in settings.command_line() for each in flag.flag_names(name)}
    cli = ast.parse((ROOT / "cli.py").read_text())
    literals = {node.value for node in ast.walk(cli) if isinstance(node, ast.Constant) and isinstance(node.value, str)}
    assert not literals & table_flags, sorted(literals & table_flags)
    helps = [flag.help for _, flag, _ in settings.command_line()] + [
        node.value for node in ast.walk(cli) if isinstance(node, ast.keyword) and node.arg == "help"
        and isinstance(node.value, ast.Constant) for node in [node.value]]
    assert not [h for h in helps if "default" in h.lower()], "a default written in a help string"
    defaults = {f.name: f.default for cls in (settings.Settings, settings.RunOptions)
                for f in dataclasses.fields(cls)}
    for name, path in settings.presets().items():
        same = {key for key, value in settings.read_config(path).items() if value == defaults.get(key)}
        assert not same, f"preset {name} repeats the defaults of {sorted(same)}"
        assert tomllib.loads(path.read_text()) is not None


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of the tree (the build leaves nothing in the checkout)."""
    base = tmp_path_factory.mktemp("wheel")
    tree = base / "tree"
    shutil.copytree(ROOT, tree, ignore=shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info", "out",
                                                              "__pycache__", "docs", "tests", "bench"))
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(base / "dist"), str(tree)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    (found,) = (base / "dist").glob("nstvid-*.whl")
    return found


def test_wheel_holds_only_the_nstvid_package(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"nstvid", wheel.name.split("-py")[0] + ".dist-info"}, tops
    for expected in ("nstvid/__init__.py", "nstvid/__main__.py", "nstvid/cli.py", "nstvid/pipeline/api.py",
                     "nstvid/pipeline/folder/run.py", "nstvid/pipeline/media/video/writer.py",
                     "nstvid/configs/balanced.toml", "nstvid/configs/fast.toml", "nstvid/configs/quality.toml"):
        assert expected in names, expected
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "nstvid = nstvid.cli:main_entry" in entry_points


def test_installed_wheel_runs_from_anywhere(wheel, tmp_path, cache_dir):
    """Installed (not editable) into a folder of its own and run from a folder outside the repo,
    with this venv's torch and friends: `import pipeline` fails, `import nstvid` works, the
    commands work, and the presets come from the installed package."""
    target, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target",
                        str(target), str(wheel)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    # The editable install of this checkout is on the path too; the wheel's copy must win.
    env = {**os.environ, "PYTHONPATH": str(target), "NSTVID_CACHE_DIR": str(cache_dir)}

    def python(*args):
        return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=elsewhere,
                              timeout=300)

    missing = python("-c", "import pipeline")
    assert missing.returncode != 0 and "No module named 'pipeline'" in missing.stderr
    assert python("-c", "import cli").returncode != 0
    found = python("-c", "import nstvid, nstvid.pipeline.settings as s; print(nstvid.__file__); "
                         "print(s.presets()['quality'])")
    assert found.returncode == 0, found.stderr
    module_file, quality = found.stdout.split()
    assert module_file.startswith(str(target)) and quality.startswith(str(target)), found.stdout
    help_ = subprocess.run([str(target / "bin" / "nstvid"), "--help"], capture_output=True, text=True, env=env,
                           cwd=elsewhere)
    assert help_.returncode == 0 and "--preset" in help_.stdout, help_.stderr
    photo = shutil.copy(CONTENT, elsewhere / "photo.png")
    dry = python("-m", "nstvid", photo, "--style", STYLE, "--preset", "quality", "--dry-run",
                 "--log-format", "plain")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.strip() == (f"nstvid: would stylise {photo} -> {elsewhere / 'photo_starry_night.png'} "
                                  "at 451x300, painted at 1024x681")
    assert sorted(p.name for p in elsewhere.iterdir()) == ["photo.png"]  # a dry run writes nothing


_REFUSED = """
import sys
from nstvid.pipeline import api
from nstvid.pipeline.errors import NstvidError
refused = []
for input, output in ((sys.argv[1] + "/missing.jpg", None), (sys.argv[2], sys.argv[2])):
    try:
        api.load_job(input, sys.argv[3], output)
    except NstvidError as e:
        refused.append(str(e))
print(len(refused), "torch" in sys.modules)
"""


def test_a_refused_job_is_refused_before_torch_loads(tmp_path):
    """A missing input and an output that would overwrite the input are refused by load_job
    without importing torch (about 2.5 s of every start): the API imports it where work starts."""
    r = subprocess.run([sys.executable, "-c", _REFUSED, str(tmp_path), str(CONTENT), str(STYLE)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["2", "False"], r.stdout


def _calls_and_compares(path: Path):
    """(names called, engine comparisons) in path: `X(...)` by X's name, and `... .engine == "ray"`."""
    tree = ast.parse(path.read_text())
    called = {node.func.id if isinstance(node.func, ast.Name) else node.func.attr for node in ast.walk(tree)
              if isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute))}
    compares = [node for node in ast.walk(tree) if isinstance(node, ast.Compare)
                and any(isinstance(side, ast.Attribute) and side.attr == "engine"
                        for side in [node.left, *node.comparators])]
    return called, compares


def test_where_a_job_runs_is_chosen_once():
    """Only api.py picks Ray or this machine (it builds the job's one backend); the jobs take the
    backend, and no job, runner or executor asks which it is. settings.py only checks the value,
    and the report only words it (page, summary: "ray" as the job's devices)."""
    pickers = {}
    for path in PACKAGE_FILES:
        called, compares = _calls_and_compares(path)
        name = module_name(path)
        words_only = name.startswith(("pipeline.report", "pipeline.settings"))
        if {"RayBackend", "LocalBackend"} & called or (compares and not words_only):
            pickers[name] = sorted({"RayBackend", "LocalBackend"} & called) + [ast.unparse(c) for c in compares]
    assert list(pickers) == ["pipeline.api"], pickers
    builds_cluster = [module_name(p) for p in PACKAGE_FILES if "Cluster" in _calls_and_compares(p)[0]]
    assert builds_cluster == ["pipeline.cluster.backend"], builds_cluster


def test_no_on_cluster_parameter_and_jobs_below_the_cluster():
    """No callback stands for the cluster (`on_cluster`); folder/ and preview.py import nothing
    from cluster/, and preview.py nothing from folder/."""
    for path in PACKAGE_FILES:
        for node in ast.walk(ast.parse(path.read_text())):
            # a parameter, a keyword argument, a variable or an attribute of that name
            name = {ast.arg: "arg", ast.keyword: "arg", ast.Name: "id", ast.Attribute: "attr"}.get(type(node))
            assert not name or getattr(node, name) != "on_cluster", f"{module_name(path)}:{node.lineno}: on_cluster"
    for path in PACKAGE_FILES:
        name, targets = module_name(path), imports_of(path)
        if name.startswith("pipeline.folder") or name == "pipeline.preview":
            assert not [t for t in targets if t.startswith("pipeline.cluster")], (name, targets)
        if name == "pipeline.preview":
            assert not [t for t in targets if t.startswith("pipeline.folder")], (name, targets)


def test_overnight_config_names_every_option_at_its_default_or_a_stated_nightly_value():
    """configs/overnight.toml, "every option nstvid knows": each Settings and RunOptions field but
    those of one run (the command line, a preview, a dry run, part of a clip), each at its default
    but the values a nightly job sets (where it writes, its log and report, its time limit, its
    style). A new field, or a changed default, fails here until the file says it."""
    import dataclasses

    from nstvid.pipeline import settings

    one_run = {"command", "preview", "preview_strengths", "dry_run", "start", "duration", "end"}
    nightly = {"output", "report", "log_format", "max_runtime", "styles"}
    values = settings.read_config(ROOT / "configs" / "overnight.toml")
    defaults = {f.name: f.default for cls in (settings.Settings, settings.RunOptions) for f in dataclasses.fields(cls)}
    assert sorted(set(defaults) - one_run - set(values)) == [], "missing from overnight.toml"
    assert "strength" in values
    differ = sorted(name for name, value in values.items() if value != defaults[name])
    assert differ == sorted(nightly), differ


_DRIFTED = '''
from pathlib import Path

from nstvid.pipeline.settings import Settings
from nstvid.pipeline.video.contract import ExecutorBase
from nstvid.pipeline.video.orchestrator import stylise_clip


class Drifted(ExecutorBase):
    """An executor whose submit() lost its task, as the tests' double once drifted."""

    free = 1
    busy = False

    def start(self, clip, work, suffix, report) -> None:
        pass

    def submit(self) -> None:
        pass

    def next(self, timeout: float) -> None:
        return None


def run(path: Path) -> None:
    stylise_clip(Drifted(), Settings(), path, path)
'''


def test_a_drifted_executor_fails_the_type_check(tmp_path):
    """The executor contract is checked, not only written: mypy (make typecheck's configuration)
    refuses an executor that no longer matches it where the orchestrator takes one."""
    pytest.importorskip("mypy")
    link = ROOT / "build" / "mypy" / "nstvid"  # what `make typecheck` makes
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink():
        link.symlink_to(Path("..") / "..")
    module = tmp_path / "drifted.py"
    module.write_text(_DRIFTED)
    r = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), str(module)],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 1, r.stdout + r.stderr
    assert 'incompatible type "Drifted"; expected "Executor"' in r.stdout, r.stdout
