"""Saved certbot hooks (`pre_hook`, `deploy_hook`, ...): which program a shell command line
would actually run, and whether it can run in the container. Pure, over the command's text;
whether a program exists here is asked through `runnable`."""

from __future__ import annotations

import re
import shlex
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

# Commands that manage services of the host: in the container they are missing or act on the
# wrong machine, so a hook calling them is never kept.
HOST_TOOLS = frozenset(
    {
        "systemctl",
        "service",
        "invoke-rc.d",
        "rc-service",
        "apache2ctl",
        "apachectl",
        "apache2",
        "httpd",
        "nginx",
        "supervisorctl",
        "docker",
        "podman",
    }
)
_SHELL_SPLIT = re.compile(r"&&|\|\||[;|&\n]")
_ENV_ASSIGN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ash", "ksh", "busybox"})
# Programs that run another command: the options of each that take a value, and how many
# operands come before the command (`timeout 10 cmd`, `flock /run/x.lock cmd`).
_WRAPPERS: dict[str, tuple[frozenset[str], int]] = {
    "sudo": (frozenset({"-u", "-g", "-h", "-p", "-C", "-D", "-R", "-r", "-t", "-U", "-T"}), 0),
    "doas": (frozenset({"-u", "-C"}), 0),
    "runuser": (frozenset({"-u", "-g", "-G", "-l", "-s"}), 0),
    "su": (frozenset({"-s", "-g", "-G", "-l"}), 0),
    "env": (frozenset({"-u", "-C", "-S"}), 0),
    "nice": (frozenset({"-n"}), 0),
    "ionice": (frozenset({"-c", "-n", "-p", "-t"}), 0),
    "stdbuf": (frozenset({"-i", "-o", "-e"}), 0),
    "timeout": (frozenset({"-s", "-k"}), 1),
    "flock": (frozenset({"-w", "-E"}), 1),
    "chroot": (frozenset(), 1),
    "nohup": (frozenset(), 0),
    "exec": (frozenset(), 0),
    "command": (frozenset(), 0),
    "time": (frozenset(), 0),
    "chronic": (frozenset(), 0),
    "xargs": (frozenset({"-I", "-n", "-P", "-d", "-L", "-s", "-E"}), 0),
}
_BUILTINS = frozenset({"exec", "command", "time"})


def _pieces(command: str) -> list[list[str]]:
    """The simple commands of a shell line, as words (quotes respected: `bash -c "a && b"`)."""
    out: list[list[str]] = []
    for line in command.splitlines():
        try:
            lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
            lexer.whitespace_split = True
            tokens = list(lexer)
        except ValueError:
            out += [part.split() for part in _SHELL_SPLIT.split(line)]
            continue
        words: list[str] = []
        for token in [*tokens, ";"]:
            if token and set(token) <= set(";&|"):
                out.append(words)
                words = []
            else:
                words.append(token)
    return [p for p in out if p]


def _unwrap(words: list[str], via: tuple[str, ...]) -> list[tuple[str, tuple[str, ...]]]:
    """The program that would actually run, through `sudo -u x`, `bash -c "..."`, `env A=1`,
    `timeout 10`...; with the wrappers it runs through."""
    while words and _ENV_ASSIGN.match(words[0]):
        words = words[1:]
    if not words:
        return []
    first, rest = words[0], words[1:]
    base = first.rsplit("/", 1)[-1]
    if (base in _SHELLS or base in ("su", "runuser")) and (script := _script(rest)) is not None:
        return [found for piece in _pieces(script) for found in _unwrap(piece, (*via, first))]
    if base in _WRAPPERS:
        options, operands = _WRAPPERS[base]
        i = 0
        while i < len(rest) and rest[i].startswith("-"):
            i += 2 if rest[i] in options else 1
            if rest[i - 1] == "--":
                break
        inner = rest[i + operands :]
        if inner:
            return _unwrap(inner, (*via, first))
    if base in _SHELLS and rest and not rest[0].startswith("-"):
        return [(rest[0], (*via, first))]  # `bash /path/script.sh`
    return [(first, via)]


def _script(args: list[str]) -> str | None:
    """The command string of `sh -c '...'` (also `-lc`, `su user -c '...'`), or None."""
    for i, arg in enumerate(args[:-1]):
        if arg.startswith("-") and not arg.startswith("--") and "c" in arg[1:]:
            return args[i + 1]
    return None


def hook_commands(command: str) -> list[str]:
    """The program each part of a shell command line runs (`a && b | c` -> a, b, c), looking
    through wrappers (`sudo -u www-data x`, `bash -c "x"`, `env A=1 x`) to the command they run."""
    return [program for piece in _pieces(command) for program, _via in _unwrap(piece, ())]


def hook_problem(command: str, runnable: Callable[[str], bool]) -> str | None:
    """Why a saved hook cannot run in the container, or None if it can: decided by the command
    that would actually run, then by the wrappers it runs through."""
    for piece in _pieces(command):
        for program, via in _unwrap(piece, ()):
            base = program.rsplit("/", 1)[-1]
            through = f" (run through {' '.join(via)})" if via else ""
            if base in HOST_TOOLS or program.startswith("/etc/init.d/"):
                return f"{base} manages the host's services, not the app's container{through}"
            if not runnable(program):
                return f"{program} is not found in the container{through}"
            for wrapper in via:
                if wrapper not in _BUILTINS and not runnable(wrapper):
                    return f"{wrapper} is not found in the container (it would run {program})"
    return None
