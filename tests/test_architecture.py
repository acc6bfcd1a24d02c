"""Architecture rules checked on the source, not on behaviour.

No module of ``energymc`` may import a ``_private`` name from another module
(issue 13): a name with a leading underscore is its module's own business, and
a helper that two modules share belongs in ``energymc/_util.py`` (or under a
public name in the module that owns it). Importing a private *module*
(``energymc.logz._ais``) is fine; importing its private *names* is not. Nor
may a module reach a private name through an imported module
(``diagnostics._az``).
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "energymc"

# (importing module, imported module, name) -> why it is allowed. Empty: every
# shared helper has a non-private name.
ALLOWED: dict[tuple[str, str, str], str] = {}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def private_imports(source: str, module: str, is_package: bool = False):
    """``(imported module, name, line)`` for each private name ``module`` takes from another module.

    Covers ``from m import _x`` and ``m._x`` where ``m`` was bound by ``import m``,
    ``import m as a`` or ``from pkg import m`` (an energymc module).
    """
    tree = ast.parse(source)
    found = []
    modules = {}  # local name -> energymc module it refers to
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source_mod = _resolve(module, node, is_package)
            if not source_mod.startswith("energymc"):
                continue
            for alias in node.names:
                name = alias.name
                full = f"{source_mod}.{name}"
                if (PACKAGE.parent / (full.replace(".", "/") + ".py")).exists() or \
                        (PACKAGE.parent / full.replace(".", "/")).is_dir():
                    modules[alias.asname or name] = full  # a module, not a name
                elif name.startswith("_") and not name.startswith("__") and source_mod != module:
                    found.append((source_mod, name, node.lineno))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("energymc"):
                    modules[alias.asname or alias.name] = alias.name
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in modules and node.attr.startswith("_")
                and not node.attr.startswith("__") and modules[node.value.id] != module):
            found.append((modules[node.value.id], node.attr, node.lineno))
    return found


def test_no_private_names_imported_across_modules():
    offences = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        for source_mod, name, line in private_imports(path.read_text(), module,
                                                      path.name == "__init__.py"):
            if (module, source_mod, name) not in ALLOWED:
                offences.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {name} "
                                f"from {source_mod}")
    assert not offences, ("private names imported across modules; give the shared thing a "
                          "public name (energymc/_util.py for helpers):\n" + "\n".join(offences))


@pytest.mark.parametrize("source, expected", [
    ("from energymc.logz._ais import _check_int\n", [("energymc.logz._ais", "_check_int", 1)]),
    ("from ._ais import _STEP0, resolve_kernel\n", [("energymc.logz._ais", "_STEP0", 1)]),
    ("from energymc import diagnostics\nx = diagnostics._az()\n",
     [("energymc.diagnostics", "_az", 2)]),
    ("import energymc.sampling as s\ns._private\n", [("energymc.sampling", "_private", 2)]),
    ("from energymc.logz import _ais\nfrom energymc._util import as_key\n", []),
    ("from energymc import __version__\n", []),
])
def test_private_import_scanner_finds_what_it_should(source, expected):
    """The scanner itself: it flags each planted offence and nothing else (negative controls)."""
    assert private_imports(source, "energymc.logz._smc") == expected


def test_every_registered_kernel_follows_the_contract_with_its_defaults():
    """Built-in kernels subclass _base.Kernel, so every optional hook exists with its default."""
    import numpy as np

    from energymc import kernels
    from energymc._base import KERNEL_HOOKS, Kernel

    for name in kernels.names():
        kernel = kernels.get(name)
        assert Kernel in type(kernel).__mro__, name
        assert all(hasattr(kernel, hook) for hook in KERNEL_HOOKS), name
    # Kernel facts live on the kernel: MCLMC costs two gradients a step, RWM one
    # energy, NUTS what its stats say.
    stats = {"lp": np.zeros((2, 5))}
    assert kernels.get("mclmc").count_grad_evals(stats, thin=3) == 2 * 10 * 3
    assert kernels.get("rwm").count_grad_evals(stats, thin=3) == 10 * 3
    assert kernels.get("nuts").count_grad_evals({**stats, "n_steps": np.full((2, 5), 7)}, 1) == 70
    assert kernels.get("gibbs").tunable is False and kernels.get("mala").tunable is True


def test_register_refuses_a_kernel_missing_a_hook():
    from energymc import kernels

    class NoHooks:
        name = "no_hooks_test"

    with pytest.raises(TypeError, match="subclass energymc._base.Kernel"):
        kernels.register(NoHooks())
    assert "no_hooks_test" not in kernels.names()


def test_version_comes_from_package_metadata():
    from importlib import metadata

    import energymc

    assert energymc.__version__ == metadata.version("energymc")
