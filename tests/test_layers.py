"""Data flows one way: setup → derive → numeric → validate (docs/ARCHITECTURE.md, "Layers").

An AST scan of every import statement (module level or inside functions) of `numeric/` and
`derive/`: numeric imports nothing of derive (it runs the generated modules its caller hands it),
and derive imports of numeric only its public kernel API, `mtsp.numeric.kernel` (today it imports
none).  Shared pieces (`mtsp.model`, `mtsp.engines`, `mtsp.errors`) live in `mtsp/`.  Runs in
well under a second.
"""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# numeric modules that still load their generated module themselves: mp_online
# (branch mpterms) take it as an argument next — remove them here as they do
PENDING: set = set()
DERIVE_MAY_IMPORT = {"mtsp.numeric.kernel"}


def _package(path: Path) -> str:
    """The dotted package of a source file of the checkout (numeric/dmft/x.py → mtsp.numeric.dmft)."""
    return ".".join(["mtsp", *path.relative_to(ROOT).parent.parts])


def imported(path: Path, package: str | None = None) -> set:
    """Every module (and `from M import name` as M.name) that the file's import statements name,
    relative imports resolved (against `package`, default the file's own in the checkout)."""
    package = package or _package(path)
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = ".".join(base[:len(base) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)
    return out


def _layer(name: str) -> list:
    return sorted(p for p in (ROOT / name).rglob("*.py"))


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_numeric_does_not_import_derive():
    offenders = {str(p.relative_to(ROOT)) for p in _layer("numeric")
                 if any(_in(m, "mtsp.derive") or _in(m, "derive") for m in imported(p))}
    assert offenders == PENDING, ("numeric must not import derive (take the generated module as an "
                                  f"argument); offenders: {sorted(offenders - PENDING)}; "
                                  f"no longer importing (drop from PENDING): {sorted(PENDING - offenders)}")


def test_derive_imports_only_the_public_kernel_of_numeric():
    for p in _layer("derive"):
        bad = sorted(m for m in imported(p) if _in(m, "mtsp.numeric") and not any(
            m == k or _in(m, k) for k in DERIVE_MAY_IMPORT) and m != "mtsp.numeric")
        bare = "mtsp.numeric" in imported(p)   # `from mtsp import numeric` / `import mtsp.numeric`
        assert not bad and not bare, f"{p.relative_to(ROOT)} imports {bad or 'mtsp.numeric'}"


def test_the_scan_sees_relative_and_function_level_imports(tmp_path):
    """The scan itself: a relative import inside a function is resolved and found."""
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from ...derive.codegen import load_module\n    from .. import kernel\n")
    mods = imported(probe, "mtsp.numeric.dmft")
    assert "mtsp.derive.codegen" in mods and "mtsp.numeric.kernel" in mods
