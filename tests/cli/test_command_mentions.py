"""Every ``fpdctl <command> [<subcommand>] [--option ...]`` that the help texts, the README or the
docs tell a user to type exists in the Typer app: the command, the subcommand and each long
option written after it.

Where mentions are read: in Markdown, code spans and fenced code blocks (prose such as "fpdctl
reports ..." is not a command); in ``--help`` texts, the raw strings (each command's help and
each parameter's help). A word after "fpdctl" that ends in a colon, holds an apostrophe or is in
``PROSE_WORDS`` is English ("an fpdctl checkpoint", "fpdctl eval's pipeline"), not a command.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
import typer.main

from fpdctl.cli.app import app

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = (ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")))
# Words that follow "fpdctl" in help prose without naming a command ("an fpdctl checkpoint").
PROSE_WORDS = frozenset({"checkpoint", "checkpoints", "run", "runs", "ships", "reads", "version"})
# A command line: "fpdctl" and what follows it up to the end of the line or code span, or a
# comma or semicolon (a list of commands in prose).
MENTION = re.compile(r"\bfpdctl((?:[ \t]+[^\s`|,;]+)+)")


def _is_prose(word: str) -> bool:
    """ "fpdctl demo: ..." (a title), "fpdctl's", "fpdctl eval's pipeline", "fpdctl ..."."""
    return word.endswith(":") or "'" in word or word == "..." or word.strip(".,;:()") in PROSE_WORDS


@dataclass(frozen=True)
class Mention:
    where: str
    text: str


def _root() -> click.Group:
    command = typer.main.get_command(app)
    assert hasattr(command, "commands")  # a group (Typer's own click or click itself)
    return command  # type: ignore[return-value]


def _code_parts(markdown: str) -> list[str]:
    """The fenced code blocks and inline code spans of a Markdown text."""
    parts = re.findall(r"```[^\n]*\n(.*?)```", markdown, flags=re.S)
    prose = re.sub(r"```.*?```", "", markdown, flags=re.S)
    return parts + [span.replace("\n", " ") for span in re.findall(r"`([^`]+)`", prose)]


def _help_texts() -> dict[str, str]:
    texts: dict[str, str] = {}

    def visit(command: click.Command, path: str) -> None:
        texts[f"{path} --help"] = command.help or ""
        for param in command.params:
            texts[f"{path} {param.name} help"] = getattr(param, "help", None) or ""
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                visit(sub, f"{path} {name}")

    visit(_root(), "fpdctl")
    return texts


def _mentions() -> list[Mention]:
    found: list[Mention] = []
    for path in DOCUMENTS:
        for part in _code_parts(path.read_text(encoding="utf-8")):
            for line in part.splitlines():
                found += [
                    Mention(str(path.relative_to(ROOT)), "fpdctl" + m.group(1))
                    for m in MENTION.finditer(line)
                    if not _is_prose(m.group(1).split()[0])
                ]
    for where, text in _help_texts().items():
        for line in text.splitlines():
            for m in MENTION.finditer(line):
                if not _is_prose(m.group(1).split()[0]):
                    found.append(Mention(where, "fpdctl" + m.group(1)))
    return found


def problem(text: str, root: click.Group) -> str | None:
    """What is wrong with the command line ``text`` ("fpdctl eval --flip ..."), None if nothing."""
    words = [w.strip(".,;:()'\"") for w in text.split()[1:] if w.strip(".,;:()'\"")]
    if not words or words[0].startswith("-"):
        return None  # "fpdctl --help", "fpdctl --version"
    command: click.Command | None = root.commands.get(words[0])
    if command is None:
        return f"no command {words[0]!r}"
    rest = words[1:]
    if hasattr(command, "commands"):
        if not rest or rest[0].startswith("-") or rest[0] in {"...", "COMMAND"}:
            return None
        sub = command.commands.get(rest[0])
        if sub is None:
            return f"no command {words[0]} {rest[0]!r}"
        command, rest = sub, rest[1:]
    options = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    options.add("--help")
    for word in rest:
        flag = word.split("=", 1)[0]
        if re.fullmatch(r"--[a-z][a-z0-9-]*", flag) and flag not in options:
            return f"{command.name} has no option {flag}"
    return None


MENTIONS = _mentions()


def test_mentions_are_found() -> None:
    """The parser finds the README's commands (a broken parser would pass everything)."""
    texts = {m.text for m in MENTIONS}
    assert any(t.startswith("fpdctl eval ") for t in texts)
    assert any(t.startswith("fpdctl data synth") for t in texts)
    assert len(MENTIONS) > 50


def test_the_checker_catches_what_does_not_exist() -> None:
    root = _root()
    assert problem("fpdctl evaluate --data x", root) == "no command 'evaluate'"
    assert problem("fpdctl data synthesize", root) == "no command data 'synthesize'"
    assert problem("fpdctl eval --list-pretrained", root) == "eval has no option --list-pretrained"
    assert problem("fpdctl eval --no-flip --data synthetic", root) is None


@pytest.mark.parametrize("text", sorted({m.text for m in MENTIONS}))
def test_every_mentioned_command_exists(text: str) -> None:
    wrong = problem(text, _root())
    where = sorted({m.where for m in MENTIONS if m.text == text})
    assert wrong is None, f"{text!r} ({', '.join(where)}): {wrong}"
