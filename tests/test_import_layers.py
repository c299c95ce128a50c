"""The layers of docs/architecture.md, checked from the source with `ast` (nothing is imported).

Every `import` and `from ... import` counts, relative or absolute, at module level or inside a
function (a lazy import is still a dependency). What each layer may import is `ALLOWED`, the
table's "Imports" column; `core/` and `protocol/` also import nothing outside the standard library.
The import graph has no cycle. A new module or package must find its row here and in the table.
"""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = "josev_bridge"
REPO = Path(__file__).resolve().parents[1]
ROOT = ""  # the package's own __init__ (it holds __version__)

# importer's layer -> what it may import from the package: a layer, or one module of it.
# A module's layer is its subpackage (`core`), or its own name at the top level (`config`).
ALLOWED: dict[str, tuple[str, ...]] = {
    "core": ("core",),
    "protocol": ("core", "protocol"),
    "adapters": ("core", "protocol", "config", "schemas", "adapters", ROOT),
    "services": ("core", "protocol", "adapters", "config", "schemas", "messages", ROOT),
    "api": ("core", "adapters", "config", "api", ROOT),
    "cli": ("core", "adapters", "config", "schemas", "status_report", "request_client", "daemon", "sim", "cli",
            ROOT),
    "config": ("core", "schemas"),
    "schemas": ("core", "schemas"),
    "messages": ("core", "schemas"),
    "status_report": ("core", "schemas"),
    "request_client": ("core", "config", "adapters.mqtt_link"),
    "daemon": ("core", "protocol", "adapters", "services", "api", "config", "schemas", "messages", "status_report",
               ROOT),
    "demo": ("core", "config", "request_client", "harness", "sim", ROOT),
    "__main__": ("cli",),
    "sim": ("core", "protocol", "adapters.http_base", "adapters.log_output", "sim", ROOT),
    "harness": ("harness", "adapters.status_file", ROOT),
    ROOT: (),
}
# (importer, imported) beyond its layer's row: the services another service asks
EXTRA = {("services.event_timestamp", "services.mcu_ingest"), ("services.mqtt_intake", "services.journal")}
# (importer, imported) inside a row that stays forbidden: the sim's link below its HTTP layer
FORBIDDEN = {("sim.pty_link", "sim.control_api")}
PURE = ("core", "protocol")  # the standard library and the package only


@dataclass(frozen=True)
class Import:
    importer: str  # module, relative to the package: "core.alerts", "" for the package's __init__
    target: str | None  # the package's module it names ("core.timestamps", "" the package), None: outside
    external: str  # the top-level name when outside the package ("paho", "json"), else ""
    line: int


def modules(package_dir: Path) -> dict[str, tuple[Path, bool]]:
    """Every module of the package: relative name -> (file, is a package __init__)."""
    out = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(package_dir).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return out


def imports(package_dir: Path, package: str = PACKAGE) -> list[Import]:
    """Every import statement of every module, resolved to a module of the package or a name outside."""
    mods = modules(package_dir)
    found = []
    for name, (path, is_package) in mods.items():
        here = [package, *name.split(".")] if name else [package]
        if not is_package:
            here = here[:-1]  # relative imports start from the module's package
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                dotted = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here[:len(here) - (node.level - 1)] if node.level - 1 < len(here) else []
                    parent = ".".join(base + ([node.module] if node.module else []))
                else:
                    parent = node.module or ""
                # `from pkg import mod` names a module when there is one; otherwise a name in pkg
                dotted = [f"{parent}.{alias.name}" if _inside(f"{parent}.{alias.name}", mods, package) else parent
                          for alias in node.names]
            else:
                continue
            for full in dotted:
                if full == package or full.startswith(package + "."):
                    found.append(Import(name, _own(full, mods, package), "", node.lineno))
                else:
                    found.append(Import(name, None, full.split(".")[0], node.lineno))
    return found


def _inside(dotted: str, mods: dict, package: str) -> bool:
    return dotted.startswith(package + ".") and dotted.removeprefix(package + ".") in mods


def _own(dotted: str, mods: dict, package: str) -> str:
    """The deepest module of the package that `dotted` names (an attribute path ends at its module)."""
    parts = dotted.removeprefix(package).lstrip(".").split(".") if dotted != package else []
    while parts and ".".join(parts) not in mods:
        parts.pop()
    return ".".join(parts)


def layer(module: str) -> str:
    return module.split(".")[0]


def _matches(target: str, allowed: str) -> bool:
    if allowed == ROOT:
        return target == ROOT
    return target == allowed or target.startswith(allowed + ".")


def violations(package_dir: Path, package: str = PACKAGE) -> list[str]:
    """What breaks the layering, one line each (file:line, importer, what it imports, the rule)."""
    found = imports(package_dir, package)
    files = {name: path.relative_to(package_dir.parent) for name, (path, _) in modules(package_dir).items()}
    out = [f"{path}: {name} is in no layer of docs/architecture.md (add its row)"
           for name, path in files.items() if layer(name) not in ALLOWED]
    for imp in found:
        where = f"{files[imp.importer]}:{imp.line}"
        row = layer(imp.importer)
        if row not in ALLOWED:
            continue
        if imp.target is None:
            if row in PURE and imp.external not in sys.stdlib_module_names:
                out.append(f"{where}: {row}/ imports {imp.external}, outside the standard library")
            continue
        if (imp.importer, imp.target) in FORBIDDEN:
            out.append(f"{where}: {imp.importer} imports {imp.target} (forbidden by docs/architecture.md)")
        elif not any(_matches(imp.target, a) for a in ALLOWED[row]) and (imp.importer, imp.target) not in EXTRA:
            what = imp.target or f"{package} (its __init__)"
            out.append(f"{where}: {imp.importer} imports {what}; {row or package} may import only "
                       f"{', '.join(a or f'{package} (__init__)' for a in ALLOWED[row]) or 'nothing of the package'}")
    out += [f"import cycle: {' -> '.join(cycle)}" for cycle in cycles(found)]
    return list(dict.fromkeys(out))  # `from x import a, b` is one line, not two


def cycles(found: list[Import]) -> list[list[str]]:
    """Strongly connected components of more than one module (or a module importing itself)."""
    graph: dict[str, set[str]] = {}
    for imp in found:
        if imp.target is not None and imp.target != imp.importer:
            graph.setdefault(imp.importer, set()).add(imp.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out = []

    def visit(v: str) -> None:  # Tarjan; the package is small, recursion is fine
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


# -- the package ----------------------------------------------------------------------------------

def test_the_package_keeps_its_layers():
    found = violations(REPO / PACKAGE)
    assert not found, "docs/architecture.md's layers broken:\n" + "\n".join(found)


def test_every_layer_is_in_the_architecture_document():
    """A new subpackage or top-level module needs its row in the table (and in ALLOWED)."""
    doc = (REPO / "docs" / "architecture.md").read_text()
    named = set(re.findall(r"`([a-z_]+)/?`", doc))
    layers = {layer(m) for m in modules(REPO / PACKAGE)} - {ROOT, "__main__"}
    assert layers - named == set(), "missing from docs/architecture.md"
    assert layers - set(ALLOWED) == set(), "missing from ALLOWED"


# -- the checker itself, on a small tree with every kind of mistake ---------------------------------

def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / PACKAGE
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for directory in [root, *[p for p in root.rglob("*") if p.is_dir()]]:
        (directory / "__init__.py").touch()
    return root


CLEAN = {
    "__init__.py": '__version__ = "1"\n',
    "config.py": "import tomllib\nfrom .core import rules\n",
    "core/rules.py": "from __future__ import annotations\nimport json\nfrom . import floor\n",
    "core/floor.py": "import dataclasses\n",
    "protocol/wire.py": "import struct\nfrom ..core.rules import x\nfrom josev_bridge.protocol import framing\n",
    "protocol/framing.py": "",
    "adapters/link.py": "import paho.mqtt.client\nfrom ..config import Config\nfrom ..protocol import wire\n",
    "services/ingest.py": "from ..adapters import link\n",
    "services/event_timestamp.py": "from .mcu_ingest import McuIngest\n",
    "services/mcu_ingest.py": "from ..core import rules\n",
    "api/server.py": "from .. import __version__\nfrom ..adapters.link import x\n",
    "cli/__init__.py": "def run():\n    from ..daemon import run\n",
    "daemon.py": "from .services import ingest\nfrom .api import server\n",
}


def test_a_clean_tree_passes(tmp_path):
    assert violations(_tree(tmp_path, CLEAN)) == []


@pytest.mark.parametrize("path, text, expected", [
    ("core/bad.py", "import paho.mqtt.client as mqtt\n", "core/ imports paho, outside the standard library"),
    ("core/bad.py", "def f():\n    import serial\n", "core/ imports serial, outside"),
    ("core/bad.py", "from ..adapters import link\n", "core.bad imports adapters.link"),
    ("core/bad.py", "from josev_bridge.services.ingest import X\n", "core.bad imports services.ingest"),
    ("core/bad.py", "import josev_bridge.config\n", "core.bad imports config"),
    ("core/bad.py", "from .. import __version__\n", "core.bad imports josev_bridge (its __init__)"),
    ("protocol/bad.py", "import serial\n", "protocol/ imports serial, outside the standard library"),
    ("protocol/bad.py", "from ..adapters.link import x\n", "protocol.bad imports adapters.link"),
    ("adapters/bad.py", "from ..services import ingest\n", "adapters.bad imports services.ingest"),
    ("adapters/bad.py", "from josev_bridge.services.ingest import Ingest\n", "adapters.bad imports services.ingest"),
    ("adapters/bad.py", "from ..api.server import x\n", "adapters.bad imports api.server"),
    ("adapters/bad.py", "from .. import daemon\n", "adapters.bad imports daemon"),
    ("api/bad.py", "from ..services.ingest import x\n", "api.bad imports services.ingest"),
    ("cli/bad.py", "from ..services import ingest\n", "cli.bad imports services.ingest"),
    ("services/bad.py", "from .ingest import x\n", "services.bad imports services.ingest"),
    ("services/bad.py", "from ..daemon import x\n", "services.bad imports daemon"),
    ("sim/pty_link.py", "from .control_api import x\n", "sim.pty_link imports sim.control_api (forbidden"),
    ("sim/bad.py", "from ..api.routes import x\n", "sim.bad imports api.routes"),
    ("newthing.py", "", "newthing is in no layer"),
])
def test_each_kind_of_bad_import_is_caught(tmp_path, path, text, expected):
    files = {**CLEAN, path: text, "api/routes.py": "", "sim/control_api.py": ""}
    found = violations(_tree(tmp_path, files))
    assert any(expected in v for v in found), found
    assert all(path.removesuffix(".py") in v for v in found), found  # nothing else is blamed


def test_one_line_per_bad_import_statement(tmp_path):
    files = {**CLEAN, "core/bad.py": "from ..adapters.link import a, b, c\n"}
    assert len(violations(_tree(tmp_path, files))) == 1


def test_a_cycle_is_caught(tmp_path):
    files = {**CLEAN, "core/floor.py": "from .rules import x\n"}
    assert violations(_tree(tmp_path, files)) == ["import cycle: core.floor -> core.rules"]


def test_relative_imports_resolve_from_the_module_and_from_a_package_init(tmp_path):
    files = {**CLEAN, "core/__init__.py": "from .rules import x\nfrom . import floor\n",
             "adapters/deep/__init__.py": "from ...core import rules\n",
             "adapters/deep/leaf.py": "from .. import link\n"}
    root = _tree(tmp_path, files)
    targets = {(i.importer, i.target) for i in imports(root)}
    assert {("core", "core.rules"), ("core", "core.floor"), ("adapters.deep", "core.rules"),
            ("adapters.deep.leaf", "adapters.link"), ("protocol.wire", "protocol.framing"),
            ("api.server", ROOT)} <= targets
