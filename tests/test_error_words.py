"""Library errors name Python parameters, never command-line flags (issue 27.4).

The CLI alone knows its flags: ``fpdctl.cli.app`` rewrites the parameters an error lists
(:attr:`fpdctl.errors.FpdError.params`) to its command's flags. This test reads every module of
the library outside ``fpdctl/cli/`` and fails on a string that spells a flag (``--x``) inside an
error's construction, inside a ``raise``, or in a module constant such as ``FLAG = "--x"``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import fpdctl
from fpdctl.cli.app import flag_table, in_flags, main
from fpdctl.errors import FpdError, UsageError

PACKAGE = Path(fpdctl.__file__).parent
FLAG = re.compile(r"(?<![\w-])--[a-z]")
# Another program's flags, which an error may tell a user to give to it.
OTHER_PROGRAMS = ("torchrun --nproc_per_node",)
ERROR_NAMES = re.compile(r"(Error|Failure|Diverged|Exception|Image)$")


def _strings(node: ast.AST) -> list[tuple[int, str]]:
    """The string pieces under ``node``: constants, and the literal parts of f-strings."""
    found = []
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            found.append((sub.lineno, sub.value))
    return found


def _called_name(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def flag_spellings(source: str) -> list[tuple[int, str]]:
    """(line, text) of every flag spelling in an error of ``source``."""
    tree = ast.parse(source)
    hits: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        pieces: list[tuple[int, str]] = []
        if isinstance(node, ast.Raise) and node.exc is not None:
            pieces = _strings(node.exc)
        elif isinstance(node, ast.Call) and ERROR_NAMES.search(_called_name(node)):
            pieces = _strings(node)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node in tree.body:
            value = node.value
            if isinstance(value, ast.Constant) and isinstance(value.value, str) and value.value.startswith("--"):
                pieces = [(node.lineno, value.value)]
        for line, text in pieces:
            for allowed in OTHER_PROGRAMS:
                text = text.replace(allowed, "")
            if FLAG.search(text) or text.endswith("--"):
                hits.append((line, text))
    return sorted(set(hits))


def test_the_scanner_sees_flags_in_errors() -> None:
    source = (
        'FLAG = "--embed-decode"\n'
        "def f(x):\n"
        '    """--flags in a docstring are fine."""\n'
        "    # --so are comments\n"
        '    if x: raise UsageError(f"--max-frames must be at least 1, got {x}")\n'
        '    if x: raise UsageError(f"bbox excludes --{x}")\n'
        '    error = DataError("needs --annotations")\n'
        '    return "max_frames must be at least 1"\n'
    )
    assert [line for line, _ in flag_spellings(source)] == [1, 5, 6, 7]


def test_no_library_error_spells_a_flag() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if (PACKAGE / "cli") in path.parents:
            continue
        for line, text in flag_spellings(path.read_text(encoding="utf-8")):
            offenders.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {text!r}")
    assert offenders == []


def test_an_error_keeps_its_params() -> None:
    error = UsageError("`max_frames` must be at least 1, got 0", params="max_frames")
    assert error.params == ("max_frames",)
    assert str(error) == "`max_frames` must be at least 1, got 0"
    assert UsageError("x", params=("a", "b")).params == ("a", "b")
    assert FpdError("plain").params == ()


def test_the_cli_writes_params_as_its_flags() -> None:
    flags = flag_table(["eval"])
    assert flags["boxes"] == "--boxes"
    assert flags["batch_size"] == "--batch-size"
    assert flags["num_workers"] == "--workers"  # a core name the command spells otherwise
    text = in_flags("`boxes` crops at detector boxes; `batch_size` 0 (`max_boxes` 3) out data/out", flags)
    assert text == "--boxes crops at detector boxes; --batch-size 0 (`max_boxes` 3) out data/out"
    assert flag_table(["data", "synth"])["count"] == "--count"
    assert flag_table(["train"])["max_steps"] == "--max-steps"


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["eval", "hg1x16", "--data", "synthetic", "--batch-size", "0"],
            "error: --batch-size must be at least 1, got 0",
        ),
        (["eval", "hg1x16", "--data", "synthetic", "--workers", "-1"], "error: --workers must be 0 or more, got -1"),
    ],
)
def test_a_cli_error_names_the_flag(args: list[str], line: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args) == 2
    assert capsys.readouterr().err.strip() == line


def test_a_python_error_names_the_parameter() -> None:
    from fpdctl.evaluation import evaluate_checkpoint

    with pytest.raises(UsageError, match=r"^`batch_size` must be at least 1, got 0$"):
        evaluate_checkpoint("hg1x16", "synthetic", batch_size=0)
    with pytest.raises(UsageError, match=r"^`num_workers` must be 0 or more, got -1$"):
        evaluate_checkpoint("hg1x16", "synthetic", num_workers=-1)


def test_a_value_that_spells_a_parameter_stays_a_value(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Only the quoted name is rewritten: a file called ``out`` (``--out out``) keeps its name."""
    out = tmp_path / "out"
    out.write_text("not a folder")
    assert main(["train", "--model", "hg1x16", "--data", "synthetic", "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip() == f"error: --out {out} exists and is not a directory"
