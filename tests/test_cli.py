"""The command-line group answers `--help` in-process."""

from click.testing import CliRunner

from indexer.cli import cli


def test_help_lists_the_group() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0, result.output
    assert "mPLUG-2" in result.output
