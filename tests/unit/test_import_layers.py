"""The import arrows of DESIGN.md, read from the source with ``ast`` (every import statement,
also inside functions and ``if TYPE_CHECKING:``), so a wrong arrow fails CI.

- edgehs layers: ``api -> service -> store -> protocol`` and ``service -> protocol``; ``types``,
  ``errors`` and ``config`` are for everyone (and import no layer themselves). ``api`` may also
  import ``homeserver`` (the wiring object its handlers get from the app). The wiring modules
  (app, cli, homeserver, demo, demo_procs, __main__, sdnotify) may import anything, and no
  layer imports them.
- protocol is pure: no aiohttp, aiosqlite, sqlite3, asyncio, sockets or clock.
- service never imports aiohttp.web.
- devices never import edgehs, edgehs never imports devices; a device service imports
  devices.common and itself, not another service; devices.common imports no service.
- api/ calls services only: besides importing no ``edgehs.store``, no api file reaches a store
  through the wiring object (``server.user_store``, ``.db``, ``.streams``) or through a service
  (``server.rooms.members``, a store a service was given).
"""

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("api", "service", "store", "protocol")
SHARED = ("types", "errors", "config")
WIRING = ("app", "cli", "homeserver", "demo", "demo_procs", "__main__", "sdnotify")
# What each edgehs part may import inside edgehs (besides itself).
ALLOWED = {
    "api": {"service", "homeserver", *SHARED},
    "service": {"store", "protocol", *SHARED},
    "store": {"protocol", *SHARED},
    "protocol": {*SHARED},
    "types": {"types", "errors"},
    "errors": {"types"},
    "config": {"types", "errors"},
}
PURE_FORBIDDEN = ("aiohttp", "aiosqlite", "sqlite3", "asyncio", "socket", "time", "datetime",
                  "http", "urllib.request")

# Imports that break the arrows TODAY, listed (not hidden) until the code is fixed; each one
# fails this test as soon as it disappears, so the list can only shrink.
KNOWN_VIOLATIONS: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class Import:
    file: str  # relative to the repository root
    module: str  # absolute dotted name (``from x import y`` gives x and x.y)
    line: int


def package_of(path: Path, root: Path = ROOT) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    else:
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, root: Path = ROOT) -> list[Import]:
    tree = ast.parse(path.read_text(), str(path))
    rel = str(path.relative_to(root))
    out: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [Import(rel, alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_of(path, root).split(".")
                base = base[:len(base) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            out.append(Import(rel, module, node.lineno))
            out += [Import(rel, f"{module}.{alias.name}", node.lineno) for alias in node.names]
        elif (isinstance(node, ast.Attribute) and node.attr == "web"
              and isinstance(node.value, ast.Name) and node.value.id == "aiohttp"):
            out.append(Import(rel, "aiohttp.web", node.lineno))  # ``aiohttp.web.X`` in code
    return out


def files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def part_of(module: str) -> str | None:
    """The edgehs part (layer, shared or wiring module) a dotted name belongs to."""
    parts = module.split(".")
    return parts[1] if parts[0] == "edgehs" and len(parts) > 1 else None


def is_under(module: str, name: str) -> bool:
    return module == name or module.startswith(name + ".")


def own_part(path: Path) -> str:
    rel = path.relative_to(ROOT / "edgehs")
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def test_the_sources_are_found() -> None:
    assert len(files("edgehs/protocol")) > 3 and len(files("edgehs/api")) > 3
    assert (ROOT / "devices" / "common" / "intent.py").exists()


def layer_violations() -> list[str]:
    found: set[str] = set()
    seen_known: set[tuple[str, str]] = set()
    for path in files("edgehs"):
        me = own_part(path)
        allowed = ALLOWED.get(me)
        if allowed is None:
            continue  # a wiring module
        for imp in imports_of(path):
            other = part_of(imp.module)
            if other is None or other == me or other in allowed:
                continue
            if (imp.file, imp.module) in KNOWN_VIOLATIONS:
                seen_known.add((imp.file, imp.module))
                continue
            if any(imp.file == f and is_under(imp.module, m) for f, m in KNOWN_VIOLATIONS):
                continue  # ``from x import y`` also yields x.y
            found.add(f"{imp.file}:{imp.line}: {me} imports {imp.module} ({me} -> {other})")
    for file, module in sorted(KNOWN_VIOLATIONS - seen_known):
        found.add(f"{file}: no longer imports {module}: remove it from KNOWN_VIOLATIONS")
    return sorted(found)


def test_edgehs_layers_import_one_way() -> None:
    problems = layer_violations()
    assert not problems, "imports against DESIGN.md's arrows:\n" + "\n".join(problems)


@pytest.mark.parametrize("package, forbidden", [
    ("edgehs/protocol", PURE_FORBIDDEN),
    ("edgehs/service", ("aiohttp.web",)),
    ("edgehs", ("devices",)),
    ("devices", ("edgehs",)),
])
def test_forbidden_imports(package: str, forbidden: tuple[str, ...]) -> None:
    problems = [f"{imp.file}:{imp.line}: imports {imp.module}"
                for path in files(package) for imp in imports_of(path)
                if any(is_under(imp.module, name) for name in forbidden)]
    assert not problems, f"{package} must not import {', '.join(forbidden)}:\n" + "\n".join(
        problems)


def test_device_services_import_only_the_kit_and_themselves() -> None:
    services = sorted(p.name for p in (ROOT / "devices").iterdir()
                      if p.is_dir() and (p / "__init__.py").exists() and p.name != "common")
    problems = []
    for path in files("devices"):
        rel = path.relative_to(ROOT / "devices").parts
        me = rel[0] if len(rel) > 1 else None  # None: devices/__init__.py, __main__.py
        for imp in imports_of(path):
            for svc in services:
                if is_under(imp.module, f"devices.{svc}") and me not in (svc, None):
                    problems.append(f"{imp.file}:{imp.line}: imports {imp.module}")
    assert not problems, "a device service (or the kit) imports another service:\n" + \
        "\n".join(problems)


def test_the_checker_sees_what_it_must(tmp_path: Path) -> None:
    """The AST reader itself: relative imports, function-level imports, ``aiohttp.web.X``."""
    path = tmp_path / "edgehs" / "service" / "thing.py"
    path.parent.mkdir(parents=True)
    path.write_text("from ..store import db\nfrom . import rooms\n"
                    "def f():\n    import aiohttp\n    return aiohttp.web.Response\n")
    found = {imp.module for imp in imports_of(path, tmp_path)}
    assert {"edgehs.store", "edgehs.store.db", "edgehs.service.rooms", "aiohttp",
            "aiohttp.web"} <= found, found


# --- api/ calls services only, never a store -----------------------------------------------

# Attribute names that hold a store by the naming of homeserver.py's wiring.
STORE_ATTRIBUTE_NAMES = re.compile(r"[a-z_]+_store|db|streams")


def imported_from(tree: ast.Module, package: str) -> dict[str, str]:
    """Names a module imports from ``package`` (``from package.x import Y``): name -> module."""
    return {alias.asname or alias.name: node.module or "" for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and is_under(node.module or "", package)
            for alias in node.names}


def self_assignments(tree: ast.AST) -> list[tuple[str, ast.expr]]:
    """``self.name = value`` statements: (name, value without ``await``)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
            if (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)
                    and target.value.id == "self"):
                found.append((target.attr, value.value if isinstance(value, ast.Await)
                              else value))
    return found


def called_class(value: ast.expr) -> str | None:
    """``X`` of ``X(...)`` or ``X.load(...)``."""
    if not isinstance(value, ast.Call):
        return None
    func = value.func.value if isinstance(value.func, ast.Attribute) else value.func
    return func.id if isinstance(func, ast.Name) else None


def homeserver_store_attributes(root: Path = ROOT) -> set[str]:
    """The ``HomeServer`` attributes that hold a store, read from homeserver.py: those assigned
    an instance of a class imported from ``edgehs.store`` (``X(...)`` or
    ``await X.load(...)``)."""
    tree = ast.parse((root / "edgehs" / "homeserver.py").read_text())
    store_classes = imported_from(tree, "edgehs.store")
    return {name for name, value in self_assignments(tree)
            if called_class(value) in store_classes}


def service_store_attributes(root: Path = ROOT) -> dict[str, set[str]]:
    """``HomeServer`` attribute of a service -> the attributes of that service that hold a
    store: ``self.x = param`` in its ``__init__`` where ``param`` is annotated with a class
    imported from ``edgehs.store``."""
    wiring = ast.parse((root / "edgehs" / "homeserver.py").read_text())
    services = imported_from(wiring, "edgehs.service")
    found: dict[str, set[str]] = {}
    for name, value in self_assignments(wiring):
        cls = called_class(value)
        if cls not in services:
            continue
        module = services[cls]
        path = root / Path(*module.split("."))
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        tree = ast.parse(path.read_text())
        store_classes = imported_from(tree, "edgehs.store")
        for node in ast.walk(tree):
            if not (isinstance(node, ast.ClassDef) and node.name == cls):
                continue
            for init in node.body:
                if not (isinstance(init, ast.AsyncFunctionDef | ast.FunctionDef)
                        and init.name == "__init__"):
                    continue
                stores = {arg.arg for arg in init.args.args + init.args.kwonlyargs
                          if isinstance(arg.annotation, ast.Name)
                          and arg.annotation.id in store_classes}
                found[name] = {attr for attr, v in self_assignments(init)
                               if isinstance(v, ast.Name) and v.id in stores}
    return found


def store_accesses(path: Path, names: set[str], through: dict[str, set[str]] | None = None,
                   root: Path = ROOT) -> list[str]:
    """Every ``x.<store attribute>`` in a file: a store named by the wiring or by the
    naming rule (``*_store``, ``db``, ``streams``), and ``x.<service>.<its store>`` for the
    stores ``through`` lists per service."""
    tree = ast.parse(path.read_text(), str(path))
    rel = path.relative_to(root)
    hits = sorted(
        (node.lineno, node.attr) for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and (node.attr in names or STORE_ATTRIBUTE_NAMES.fullmatch(node.attr)
             or (isinstance(node.value, ast.Attribute)
                 and node.attr in (through or {}).get(node.value.attr, set()))))
    return [f"{rel}:{line}: .{attr}" for line, attr in hits]


def test_the_wiring_names_its_stores() -> None:
    names = homeserver_store_attributes()
    assert {"db", "streams", "user_store", "event_store", "member_store"} <= names, names
    through = service_store_attributes()
    assert {"members", "rooms", "users"} <= through["rooms"], through["rooms"]
    assert "users" in through["users"], through["users"]


def test_api_touches_no_store() -> None:
    """DESIGN.md: handlers never touch a store; ``api/`` calls services only."""
    names, through = homeserver_store_attributes(), service_store_attributes()
    problems = [hit for path in files("edgehs/api")
                for hit in store_accesses(path, names, through)]
    assert not problems, "api/ reaches a store (call a service instead):\n" + "\n".join(problems)


def test_the_store_checker_sees_what_it_must(tmp_path: Path) -> None:
    path = tmp_path / "handler.py"
    path.write_text("async def h(server):\n    await server.member_store.forget(1, 2)\n"
                    "    server.db.write\n    server.streams.next()\n    server.rooms.join()\n")
    assert store_accesses(path, {"rooms_cache"}, root=tmp_path) == [
        "handler.py:2: .member_store", "handler.py:3: .db", "handler.py:4: .streams"]
    path.write_text("def h(server):\n    server.rooms_cache.get(1)\n"
                    "    return server.rooms.members.forget(1, 2)\n")
    assert store_accesses(path, {"rooms_cache"}, {"rooms": {"members"}}, tmp_path) == [
        "handler.py:2: .rooms_cache", "handler.py:3: .members"]
