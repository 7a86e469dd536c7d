"""The shape of the library's code: short functions and documented return values.

Rules checked here, by reading the source with ``ast`` (nothing is imported):

* **No function over 60 lines of code.** A function's lines of code are the lines from its ``def`` to its last
  statement that hold code: blank lines, lines that are only a comment, and the lines of its docstring do not count.
  A nested function counts towards the function that holds it (it is part of reading it) and is also measured alone.
* **The run folder's layout is spelled once.** No module but ``medadv/layout.py`` builds a path from one of the run
  folder's names (``path / "checkpoints"``) or writes one as a path string (``"tables/x.csv"``): every writer and
  reader takes its paths from ``medadv.layout.RunLayout`` (docs/design.md, "The run folder").
* **No stage module re-exports.** Every name in a ``medadv.stages`` module's ``__all__`` is defined there; a notebook
  imports what a library module makes from that module (docs/design.md, "Stage modules").
* **Every public function documents what it returns.** Public means a module-level function or a method of a public
  class whose name has no leading underscore, in a module whose path has no part with a leading underscore; its
  docstring must have a Google-style ``Returns:`` (or ``Yields:``) section. Exempt are functions annotated
  ``-> None`` (nothing comes back), properties and dunder methods.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

LIB = Path(__file__).resolve().parents[1] / "lib" / "medadv"
MAX_LINES = 60


def _code_lines(source: str) -> set[int]:
    """Returns the numbers of the lines of ``source`` that hold a token other than a comment or a newline."""
    lines: set[int] = set()
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type in skip:
            continue
        lines.update(range(token.start[0], token.end[0] + 1))
    return lines


def _docstring_lines(node: ast.AST) -> set[int]:
    """Returns the line numbers taken by the docstring of ``node`` (empty when it has none)."""
    if not isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) or not node.body:
        return set()
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        return set(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    return set()


def function_lengths(root: Path = LIB) -> dict[str, int]:
    """Returns ``{"path:qualified_name": lines of code}`` for every function and method under ``root``."""
    lengths: dict[str, int] = {}
    for path in sorted(root.rglob("*.py")):
        source = path.read_text()
        code = _code_lines(source)
        tree = ast.parse(source)

        def visit(node: ast.AST, prefix: str) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    name = f"{prefix}{child.name}"
                    span = set(range(child.lineno, (child.end_lineno or child.lineno) + 1))
                    docs: set[int] = set()
                    for inner in ast.walk(child):
                        docs |= _docstring_lines(inner)
                    lengths[f"{path.relative_to(root.parent)}:{name}"] = len((span & code) - docs)
                    visit(child, f"{name}.")
                elif isinstance(child, ast.ClassDef):
                    visit(child, f"{prefix}{child.name}.")

        visit(tree, "")
    return lengths


def test_the_counter_counts_code_not_comments_or_docstrings(tmp_path: Path) -> None:
    module = tmp_path / "pkg" / "m.py"
    module.parent.mkdir()
    module.write_text(
        'def f(x):\n    """Doc.\n\n    Returns:\n        x.\n    """\n    # a comment\n\n    y = (x +\n         1)\n'
        "    return y\n\n\nclass C:\n    def g(self):\n        def h():\n            return 1\n        return h()\n"
    )
    lengths = function_lengths(tmp_path / "pkg")
    assert lengths == {"pkg/m.py:f": 4, "pkg/m.py:C.g": 4, "pkg/m.py:C.g.h": 2}


def test_no_function_is_over_60_lines_of_code() -> None:
    lengths = function_lengths()
    assert len(lengths) > 500, "the counter found too few functions; is LIB right?"
    long = {name: n for name, n in lengths.items() if n > MAX_LINES}
    assert not long, f"functions over {MAX_LINES} lines of code (split them into named steps): {long}"


_RETURNS = re.compile(r"^\s*(Returns|Yields)\s*:", re.MULTILINE)


def public_functions_without_returns(root: Path = LIB) -> list[str]:
    """Returns ``path:qualified_name`` of every public function or method whose docstring has no Returns section."""
    missing: list[str] = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent)
        if any(part.startswith("_") and part != "__init__.py" for part in rel.parts):
            continue
        tree = ast.parse(path.read_text())

        def check(node: ast.AST, prefix: str) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.ClassDef) and not child.name.startswith("_"):
                    check(child, f"{child.name}.")
                elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    if child.name.startswith("_"):
                        continue
                    decorators = {ast.unparse(d) for d in child.decorator_list}
                    if decorators & {"property", "functools.cached_property", "cached_property"} or any(
                        d.endswith(".setter") for d in decorators
                    ):
                        continue
                    if isinstance(child.returns, ast.Constant) and child.returns.value is None:
                        continue
                    doc = ast.get_docstring(child) or ""
                    if not _RETURNS.search(doc):
                        missing.append(f"{rel}:{prefix}{child.name}")

        check(tree, "")
    return missing


def test_every_public_function_documents_what_it_returns() -> None:
    missing = public_functions_without_returns()
    assert not missing, f"{len(missing)} public functions have no 'Returns:' section in their docstring: {missing}"


# ---------------------------------------------------------------- names (docs/design.md, "Names")

#: File names that repeat across packages because they play the same role in each (docs/design.md, "Names").
SAME_ROLE_NAMES = {"__init__.py", "plots.py", "config.py"}


def test_a_file_name_repeats_only_where_it_plays_the_same_role() -> None:
    where: dict[str, set[str]] = {}
    for path in LIB.rglob("*.py"):
        where.setdefault(path.name, set()).add(path.parent.relative_to(LIB).as_posix())
    repeated = {name: packages for name, packages in where.items() if len(packages) > 1 and name not in SAME_ROLE_NAMES}
    assert repeated == {}, f"file names used twice for different roles (rename one; docs/design.md, Names): {repeated}"


def test_no_function_is_named_by_a_paper_number() -> None:
    named = sorted(
        f"{path.relative_to(LIB)}:{node.lineno} {node.name}"
        for path in LIB.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and re.search(r"(^|_)(paper)?\d{3}($|_)", node.name.lstrip("_"))
    )
    assert named == []  # say what it does; cite the paper in the docstring


def test_no_stage_module_re_exports() -> None:
    found = {}
    for path in sorted((LIB / "stages").glob("*.py")):
        tree = ast.parse(path.read_text())
        defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        exported: list[str] = []
        for node in tree.body:
            targets = (
                node.targets
                if isinstance(node, ast.Assign)
                else [node.target]
                if isinstance(node, ast.AnnAssign)
                else []
            )
            names = [t.id for t in targets if isinstance(t, ast.Name)]
            defined.update(names)
            if "__all__" in names and isinstance(node.value, (ast.List, ast.Tuple)):
                exported = [e.value for e in node.value.elts if isinstance(e, ast.Constant)]
        if [name for name in exported if name not in defined]:
            found[path.name] = [name for name in exported if name not in defined]
    assert not found, f"stage modules re-export names they import (import them from their own modules): {found}"


# ---------------------------------------------------------------- the run folder's layout (docs/design.md)

#: The run folder's own names (medadv/layout.py).
RUN_FOLDER_NAMES = frozenset(
    {
        "config.json",
        "manifest.json",
        "summary.json",
        "cohort.csv",
        "run.lock",
        "pipeline.log",
        "profile.yaml",
        "checkpoints",
        "tables",
        "figures",
        "data",
        "notebooks",
        "logs",
        "report",
        "training",
        "phantom",
        "adversarial",
        "education",
        "attack_examples",
        "reader_packages",
        "reader_responses",
        "panel.json",
        "reader_responses_machine",
        "reader.sqlite",
        "answer_key.csv",
    }
)
_PATH_STRING = re.compile(r"^(checkpoints|tables|figures|data|notebooks|logs)/")


def layout_spellings(root: Path = LIB) -> list[str]:
    """Returns ``path:line: text`` of every path built from a run-folder name outside ``layout.py``: a ``/`` with one
    of :data:`RUN_FOLDER_NAMES` on either side, or a plain string constant that starts like a run-folder path (text
    inside an f-string, a message or a report's link, is not a path)."""
    found = []
    for path in sorted(root.rglob("*.py")):
        if path.name == "layout.py":
            continue
        tree = ast.parse(path.read_text())
        in_fstring = {id(v) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for v in node.values}
        for node in ast.walk(tree):
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
                sides = [s for s in (node.left, node.right) if isinstance(s, ast.Constant)]
                if any(s.value in RUN_FOLDER_NAMES for s in sides):
                    found.append(f"{path.relative_to(root)}:{node.lineno}: {ast.unparse(node)}")
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in in_fstring:
                if _PATH_STRING.match(node.value):
                    found.append(f"{path.relative_to(root)}:{node.lineno}: {node.value!r}")
    return sorted(found, key=lambda f: (f.split(":")[0], int(f.split(":")[1])))


def test_the_counter_of_layout_spellings_finds_them(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text(
        'from pathlib import Path\nx = Path("r") / "checkpoints" / "vgg"\ny = "tables/adversarial_index.csv"\n'
        'z = f"tables/{x}.csv"\nw = Path("r") / "models"\n'
    )
    assert layout_spellings(tmp_path) == [
        "a.py:2: Path('r') / 'checkpoints'",
        "a.py:3: 'tables/adversarial_index.csv'",
    ]


#: Folders with a run folder's name that are not in a run folder: ``file: expression`` -> what the folder is.
NOT_RUN_FOLDERS = {
    "core.py: checkout / 'notebooks'": "the kit's checkout's notebooks",
    "core.py: p / 'notebooks'": "the kit's checkout's notebooks",
    "pipeline.py: LIB_DIR.parents[1] / 'notebooks'": "the kit's checkout's notebooks",
    "models/backbones.py: Path(torch.hub.get_dir()) / 'checkpoints'": "torchvision's download cache",
}


def test_only_the_layout_module_spells_the_run_folder() -> None:
    found = [f for f in layout_spellings() if re.sub(r":\d+:", ":", f) not in NOT_RUN_FOLDERS]
    assert not found, f"paths of the run folder built outside medadv/layout.py (use RunLayout): {found}"
