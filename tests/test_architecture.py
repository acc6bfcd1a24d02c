"""Architecture rules checked on the source, not on behaviour (``ast`` scans, fast).

* No module of ``energymc`` may import a ``_private`` name from another module
  (issue 13): a name with a leading underscore is its module's own business,
  and a helper that two modules share belongs in ``energymc/_util.py`` (or
  under a public name in the module that owns it). Importing a private
  *module* (``energymc.logz._ais``) is fine; importing its private *names* is
  not. Nor may a module reach a private name through an imported module
  (``diagnostics._az``, ``emc.diagnostics._az``).
* The tests and the examples follow the same rule: they call the public API,
  and a test of an internal module uses that module's non-private names.
* Every module says its job in the first line of its docstring, and no
  function body is longer than :data:`MAX_BODY_LINES` lines (its docstring
  not counted).

Each scanner is itself tested on planted sources (negative controls), so a
rule that silently stopped finding anything would fail.
"""

import ast
from pathlib import Path

import pytest

from energymc.errors import OptionError

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "energymc"
# Code outside the package that must use only public names. (benchmarks/ is
# left out: two probes there read private names of logz/ on purpose.)
OUTSIDE = ("tests", "examples")

# (importing module, imported module, name) -> why it is allowed.
ALLOWED: dict[tuple[str, str, str], str] = {}

#: The longest function body allowed, in lines, its docstring not counted
#: (issue 13: "no function over ~80 lines outside docstrings").
MAX_BODY_LINES = 80


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
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
                if _is_module(full):
                    modules[alias.asname or name] = full  # a module, not a name
                elif name.startswith("_") and not name.startswith("__") and source_mod != module:
                    found.append((source_mod, name, node.lineno))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("energymc"):
                    modules[alias.asname or alias.name] = alias.name
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                and not node.attr.startswith("__")):
            continue
        owner = _module_of(node.value, modules)
        # A private *module* reached as an attribute (emc._util) is fine, as its import is.
        if owner is not None and owner != module and not _is_module(f"{owner}.{node.attr}"):
            found.append((owner, node.attr, node.lineno))
    return found


def _is_module(dotted: str) -> bool:
    path = PACKAGE.parent / dotted.replace(".", "/")
    return path.with_suffix(".py").exists() or path.is_dir()


def _module_of(node, modules: dict) -> str | None:
    """The energymc module an expression names (``s``, ``emc.diagnostics``), else ``None``."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name) or node.id not in modules:
        return None
    dotted = ".".join([modules[node.id], *reversed(parts)])
    return dotted if not parts or _is_module(dotted) else None


def _offences(paths) -> list[str]:
    offences = []
    for path in paths:
        module = _module_name(path)
        for source_mod, name, line in private_imports(path.read_text(), module,
                                                      path.name == "__init__.py"):
            if (module, source_mod, name) not in ALLOWED:
                offences.append(f"{path.relative_to(ROOT)}:{line} imports {name} "
                                f"from {source_mod}")
    return offences


def test_no_private_names_imported_across_modules():
    offences = _offences(sorted(PACKAGE.rglob("*.py")))
    assert not offences, ("private names imported across modules; give the shared thing a "
                          "public name (energymc/_util.py for helpers):\n" + "\n".join(offences))


def test_tests_and_examples_use_no_private_names():
    """Tests call the public API (a test of an internal module uses its public names)."""
    offences = _offences(sorted(p for d in OUTSIDE for p in (ROOT / d).rglob("*.py")))
    assert not offences, ("private energymc names used outside the package; test through "
                          "public behaviour, or give the helper a public name:\n"
                          + "\n".join(offences))
    # The scan reached the tests (not an empty or wrong directory).
    assert any(p.name == "conftest.py" for p in (ROOT / "tests").rglob("*.py"))


def private_cache_counts(source: str) -> list[int]:
    """Lines that count compilations through JAX's private ``_cache_size()``."""
    return [node.lineno for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Attribute) and node.attr == "_cache_size"]


def test_compilations_are_counted_through_the_public_counter():
    """``emc.compilations()`` (``jax.monitoring`` events), never ``jitted._cache_size()``."""
    offences = [f"{p.relative_to(ROOT)}:{line}"
                for d in ("energymc", *OUTSIDE) for p in sorted((ROOT / d).rglob("*.py"))
                for line in private_cache_counts(p.read_text())]
    assert not offences, "use emc.compilations() instead of _cache_size():\n" + "\n".join(offences)
    # Negative control: a planted private count is found.
    assert private_cache_counts("f = jax.jit(g)\nassert f._cache_size() == 1\n") == [2]


@pytest.mark.parametrize("source, expected", [
    ("from energymc.logz._ais import _check_int\n", [("energymc.logz._ais", "_check_int", 1)]),
    ("from ._ais import _STEP0, resolve_kernel\n", [("energymc.logz._ais", "_STEP0", 1)]),
    ("from energymc import diagnostics\nx = diagnostics._az()\n",
     [("energymc.diagnostics", "_az", 2)]),
    ("import energymc.sampling as s\ns._private\n", [("energymc.sampling", "_private", 2)]),
    ("import energymc as emc\nemc.diagnostics._az()\n", [("energymc.diagnostics", "_az", 2)]),
    ("import energymc as emc\nemc._util.static\n", []),
    ("from energymc.logz import _ais\nfrom energymc._util import as_key\n", []),
    ("from energymc import __version__\n", []),
    ("import energymc as emc\nrun = emc.sample()\nrun._stats\n", []),  # an object, not a module
])
def test_private_import_scanner_finds_what_it_should(source, expected):
    """The scanner itself: it flags each planted offence and nothing else (negative controls)."""
    assert private_imports(source, "energymc.logz._smc") == expected


def test_every_registered_kernel_follows_the_contract_with_its_defaults():
    """Built-in kernels subclass _base.Kernel, so every optional hook exists with its default."""
    import numpy as np

    from energymc import kernels
    from energymc._base import KERNEL_HOOKS, Kernel

    # energymc's own kernels (a test may have registered one of its own in this process).
    built_in = [n for n in kernels.names()
                if type(kernels.get(n)).__module__.startswith("energymc.")]
    assert {"nuts", "mala", "gibbs", "pt"} <= set(built_in)
    for name in built_in:
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


# ------------------------------------------------- one job per module, short functions
def docstring_problem(source: str) -> str | None:
    """Why a module's docstring does not say its job in its first line, or ``None``.

    The first line must be a phrase of at least three words (not a bare name),
    and must not send the reader elsewhere (a module kept only as a former home
    has no job).
    """
    doc = ast.get_docstring(ast.parse(source))
    if not doc:
        return "no module docstring"
    first = doc.strip().splitlines()[0].strip()
    if len(first.split()) < 3:
        return f"first line {first!r} does not say the module's job"
    if first.lower().startswith(("former", "deprecated", "kept ")):
        return f"first line {first!r}: a module kept for history has no job"
    return None


def long_functions(source: str, limit: int = MAX_BODY_LINES) -> list[tuple[str, int, int]]:
    """``(name, line, body lines)`` of each function or method whose body, its
    docstring not counted, is longer than ``limit`` lines (nested functions
    count in their parent's body and on their own)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        body = node.body
        if (isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            body = body[1:]  # the docstring
        if not body:
            continue
        length = node.end_lineno - body[0].lineno + 1
        if length > limit:
            found.append((node.name, node.lineno, length))
    return found


def test_every_module_says_its_job_in_its_first_line():
    problems = [f"{path.relative_to(ROOT)}: {why}" for path in sorted(PACKAGE.rglob("*.py"))
                if (why := docstring_problem(path.read_text())) is not None]
    assert not problems, "\n".join(problems)


def test_no_function_body_is_longer_than_the_limit():
    offences = [f"{path.relative_to(ROOT)}:{line} {name} has {n} lines (limit {MAX_BODY_LINES})"
                for path in sorted(PACKAGE.rglob("*.py"))
                for name, line, n in long_functions(path.read_text())]
    assert not offences, ("split these into named steps:\n" + "\n".join(offences))


@pytest.mark.parametrize("source, expected", [
    ('"""Sampling loop: where chains are started and run."""\n', None),
    ("x = 1\n", "no module docstring"),
    ('"""Helpers."""\n', "first line 'Helpers.' does not say the module's job"),
    ('"""Former home of the guard; it lives in _util now."""\n',
     "first line 'Former home of the guard; it lives in _util now.': a module kept for "
     "history has no job"),
])
def test_docstring_rule_finds_what_it_should(source, expected):
    """Negative controls for the docstring rule."""
    assert docstring_problem(source) == expected


def test_length_rule_finds_what_it_should():
    """Negative controls for the length rule: 81 lines fail, 80 lines and a long docstring pass."""
    def function(name, n_body, doc_lines=0):
        doc = ['    """Doc.'] + ["    more"] * doc_lines + ['    """'] if doc_lines else []
        return "\n".join([f"def {name}(x):", *doc, *["    x = x + 1"] * (n_body - 1),
                          "    return x", ""])

    source = function("long", 81) + function("fine", 80, doc_lines=30) + \
        "class A:\n" + "\n".join("    " + ln for ln in function("method", 82).splitlines())
    method_line = source.splitlines().index("    def method(x):") + 1
    assert long_functions(source) == [("long", 1, 81), ("method", method_line, 82)]
    assert long_functions(function("short", 5)) == []


def test_unregister_removes_a_users_kernel_but_not_energymcs_own():
    import dataclasses

    from energymc import kernels

    mine = kernels.register(dataclasses.replace(kernels.get("mala"), name="unregister_test"))
    assert "unregister_test" in kernels.names()
    assert kernels.unregister("unregister_test") is mine
    assert "unregister_test" not in kernels.names()
    with pytest.raises(OptionError, match="no kernel named 'unregister_test'"):
        kernels.unregister("unregister_test")
    # Negative control: the package's own kernels stay.
    with pytest.raises(OptionError, match="one of energymc's own kernels"):
        kernels.unregister("nuts")
    import energymc.kernels.discrete  # noqa: F401 - loaded before any lookup, as models do

    gibbs = kernels.get("gibbs")
    try:
        with pytest.raises(OptionError, match="one of energymc's own kernels"):
            kernels.unregister("gibbs")
    finally:  # never leave other tests in this process without the kernel
        if "gibbs" not in kernels.names():
            kernels.register(gibbs)
    assert {"nuts", "gibbs"} <= set(kernels.names())
