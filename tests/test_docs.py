"""The README keeps up with the code: every command is documented there and has help text."""

from __future__ import annotations

from click.testing import CliRunner

from mailflow.cli import main
from mailflow.testing import REPO


def test_every_command_is_in_the_readme_and_has_help() -> None:
    readme = (REPO / "README.md").read_text()
    runner = CliRunner()
    for name, command in main.commands.items():
        assert f"mailflow {name}" in readme, f"`mailflow {name}` is not documented in README.md"
        assert command.help and len(command.help) > 20, f"`mailflow {name}` has no help text"
        result = runner.invoke(main, [name, "--help"])
        assert result.exit_code == 0 and "Usage:" in result.output


def test_the_readme_test_command_is_what_ci_runs() -> None:
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    assert "scripts/test " in readme and "exec scripts/test" in ci
