"""Saved hooks: the programs a shell command line would run."""

from __future__ import annotations

from sidecar.volume.hooks import hook_commands


def test_hook_commands_are_found_in_shell_lines():
    """Every program of `A=1 sudo a && b | c; d` is checked."""
    assert hook_commands("A=1 sudo a x && b | c; d") == ["a", "b", "c", "d"]
    assert hook_commands("") == []
