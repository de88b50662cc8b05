"""Which programs the suite runs, and whether scripts/install-services.sh provides each one.

A fresh machine has only what `make test` installs. The suite records every program it starts
(an audit hook on ``subprocess.Popen``, including the words of ``sh -c`` command strings) and a
static scan finds the programs named in the code and in the shell scripts the tests run; each
must be in the install script's table or come with every Debian system (an Essential package or
one of priority required).
"""

from __future__ import annotations

import ast
import functools
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = REPO / "scripts" / "install-services.sh"

SUBPROCESS_CALLS = {"run", "Popen", "check_output", "check_call", "call"}
SHELL_WORDS = {
    "if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done", "case", "esac",
    "in", "function", "select", "time", "!", "{", "}", "[[", "]]",
}
# Shell builtins: never a program to install.
BUILTINS = {
    ".", ":", "[", "alias", "bg", "break", "cd", "command", "continue", "declare", "echo", "eval",
    "exec", "exit", "export", "false", "fg", "getopts", "hash", "jobs", "kill", "let", "local",
    "mapfile", "printf", "pwd", "read", "readonly", "return", "set", "shift", "shopt", "source",
    "test", "trap", "true", "type", "typeset", "ulimit", "umask", "unset", "wait",
}
_NAME = re.compile(r"^[A-Za-z][\w.+-]*$")


def declared_programs(script: Path = INSTALL_SCRIPT) -> dict[str, str]:
    """The install script's table: program -> Debian package."""
    listing = subprocess.run(["bash", str(script), "--list"], capture_output=True, text=True,
                             check=True, timeout=30).stdout
    table: dict[str, str] = {}
    for line in listing.splitlines():
        parts = line.split()
        if len(parts) == 3:
            table[parts[0]] = parts[1]
    return table


def program_name(argv0: str) -> str | None:
    """The program an argv[0] names, or None for the project's own Python and scripts."""
    path = Path(argv0)
    if "/" in argv0 and not path.is_absolute():
        return None  # a script of the repository's, run by its relative path
    if argv0 == sys.executable or path.name.startswith("python"):
        return None
    resolved = path if path.is_absolute() else None
    venv = Path(sys.prefix)
    if resolved is not None and (venv in resolved.parents or REPO in resolved.parents
                                 or not _is_system_path(resolved)):
        return None  # the venv's own commands, the repository's scripts, a test's temp file
    return path.name


def _is_system_path(path: Path) -> bool:
    return str(path).startswith(("/usr/", "/bin/", "/sbin/", "/opt/"))


def commands_in_shell(text: str) -> set[str]:
    """Programs in command position in a shell command string or script (a careful heuristic:
    quotes, comments, pipelines, $(...) and here-documents are understood; no expansion)."""
    functions = set(re.findall(r"^\s*(?:function\s+)?([A-Za-z_][\w-]*)\s*\(\)", text, re.M))
    found: set[str] = set()
    for line in _logical_lines(text):
        for words in _segments(line):
            name = _command_word(words)
            if name and name not in functions:
                found.add(name)
    return found


def _logical_lines(text: str) -> list[str]:
    lines, heredoc_end, case_depth = [], None, 0
    for line in text.replace("\\\n", " ").splitlines():
        if heredoc_end is not None:
            if line.strip() == heredoc_end:
                heredoc_end = None
            continue
        case_depth += len(re.findall(r"\bcase\b.*\bin\b", line))
        if case_depth and re.match(r"^\s*[^\s()\"'][^()]*\)", line):
            line = line.split(")", 1)[1]  # drop the case pattern: "a|b) command ;;"
        case_depth -= len(re.findall(r"\besac\b", line))
        marker = re.search(r"<<-?\s*['\"]?(\w+)['\"]?", line)
        if marker:
            heredoc_end = marker.group(1)
        lines.append(line)
    return lines


def _segments(line: str) -> list[list[str]]:
    """The simple commands of one line, split at ; & | ( ) and inside backticks."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|()")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        tokens = list(lexer)
    except ValueError:  # an unbalanced quote: a string that goes on over lines
        return []
    segments: list[list[str]] = [[]]
    in_array = False
    for index, token in enumerate(tokens):
        if in_array:  # X=(a b c): words, not commands
            in_array = token != ")"
            continue
        if re.match(r"^\w+\+?=$", token) and tokens[index + 1:index + 2] == ["("]:
            in_array = True
            continue
        if token and set(token) <= set(";&|()"):
            segments.append([])
        elif token.startswith("`") and token.endswith("`") and len(token) > 1:
            segments.extend(_segments(token[1:-1]))
            segments.append([])
        else:
            segments[-1].append(token)
    return [segment for segment in segments if segment]


def _command_word(words: list[str]) -> str | None:
    if words[0] in {"for", "case", "select"}:
        return None  # the loop variable and its list are not commands
    while words and (words[0] in SHELL_WORDS or re.match(r"^\w+\+?=", words[0])):
        words = words[1:]
    if not words:
        return None
    word = words[0]
    if word == "command" and len(words) > 1 and words[1] in {"-v", "-V"}:
        return None  # a look-up, not a run
    if word in {"sudo", "env", "nohup", "exec", "command"} and len(words) > 1:
        word = next((w for w in words[1:] if not w.startswith("-") and "=" not in w), word)
    name = Path(word).name if word.startswith("/") else word
    if _NAME.match(name) and name not in BUILTINS and name not in SHELL_WORDS:
        return name
    return None


def record_launch(argv: Any) -> set[str]:
    """The programs one ``subprocess.Popen`` argv starts (with ``sh -c`` strings looked into)."""
    if isinstance(argv, (str, bytes, os.PathLike)):
        words = [os.fsdecode(argv)]
    else:
        words = [os.fsdecode(word) for word in argv]
    if not words:
        return set()
    first = program_name(words[0])
    programs = {first} if first else set()
    if first in {"sh", "bash", "dash"} and "-c" in words[1:-1]:
        programs |= commands_in_shell(words[words.index("-c") + 1])
    return programs


class LaunchRecorder:
    """An audit hook that remembers every program the test process starts."""

    def __init__(self) -> None:
        self.programs: set[str] = set()

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        if event == "subprocess.Popen":
            executable, argv = args[0], args[1]
            launched = [executable] if executable and not argv else argv
            try:
                self.programs |= record_launch(launched)
            except Exception:  # an audit hook must never break the call it observes
                return


def literal_programs(sources: Iterable[Path]) -> set[str]:
    """Program names written as literals in Python code: subprocess argv[0] and shutil.which."""
    found: set[str] = set()
    for path in sources:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = (node.func.attr if isinstance(node.func, ast.Attribute)
                    else node.func.id if isinstance(node.func, ast.Name) else "")
            if not node.args:
                continue
            first = node.args[0]
            if name == "which" and isinstance(first, ast.Constant) and isinstance(first.value,
                                                                                  str):
                found.add(first.value)
            elif name in SUBPROCESS_CALLS and isinstance(first, (ast.List, ast.Tuple)) \
                    and first.elts and isinstance(first.elts[0], ast.Constant) \
                    and isinstance(first.elts[0].value, str):
                program = program_name(first.elts[0].value)
                if program:
                    found.add(program)
    return found


@functools.cache
def base_system_package(program: str) -> str | None:
    """The Debian package that provides ``program`` when it is Essential or of priority
    required (present on every Debian system), else None."""
    located = shutil.which(program) or next(
        (p for p in (f"/usr/sbin/{program}", f"/sbin/{program}") if os.path.exists(p)), None)
    if located is None or shutil.which("dpkg") is None:
        return None
    candidates = {located, os.path.realpath(located)}
    for path in list(candidates):
        if path.startswith("/usr/"):
            candidates.add(path[4:])  # merged /usr: dpkg may know it as /bin/...
    for path in candidates:
        owner = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True,
                               check=False, timeout=30)
        if owner.returncode != 0:
            continue
        package = owner.stdout.split(":", 1)[0].strip()
        info = subprocess.run(["dpkg-query", "-W", "-f=${Essential} ${Priority}", package],
                              capture_output=True, text=True, check=False, timeout=30).stdout
        if info.startswith("yes") or info.endswith("required"):
            return package
    return None


def in_the_venv(program: str) -> bool:
    """A command installed by pip into the project's venv (``pip install -e '.[dev]'``)."""
    return (Path(sys.prefix) / "bin" / program).exists()


def unprovided(programs: Iterable[str], declared: dict[str, str]) -> list[str]:
    """Programs neither in the install script's table, nor installed into the venv by the
    project's dependencies, nor part of every Debian system."""
    return sorted(p for p in set(programs)
                  if p not in declared and not in_the_venv(p) and base_system_package(p) is None)
