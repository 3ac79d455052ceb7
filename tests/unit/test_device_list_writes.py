"""Every write of a device goes through DeviceService (service/device_management.py), which
adds the device list change in the same transaction: no other code calls the store's device
writers, and UserStore has no method that writes a device on its own commit.

https://spec.matrix.org/v1.19/client-server-api/#tracking-the-device-list-for-a-user
"""

import ast
import inspect
from pathlib import Path

from edgehs.store.users import UserStore

ROOT = Path(__file__).resolve().parents[2] / "edgehs"
WRITERS = {"put_device", "remove_devices", "rename_device", "deactivate_user"}
OWNER = ROOT / "service" / "device_management.py"
DEFINED_IN = ROOT / "store" / "users.py"


def _calls(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else (
                func.attr if isinstance(func, ast.Attribute) else None)
            if name in WRITERS:
                names.add(name)
    return names


def test_only_the_device_service_calls_the_device_writers() -> None:
    callers = {}
    for path in ROOT.rglob("*.py"):
        if path in (OWNER, DEFINED_IN):
            continue
        called = _calls(ast.parse(path.read_text()))
        if called:
            callers[str(path.relative_to(ROOT))] = sorted(called)
    assert callers == {}, "device writes without their device list change"
    assert _calls(ast.parse(OWNER.read_text())) == WRITERS


def test_the_user_store_has_no_device_write_of_its_own() -> None:
    source = inspect.getsource(UserStore)
    assert _calls(ast.parse(source)) == set()
