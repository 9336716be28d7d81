from typer.testing import CliRunner

import mlpot
from mlpot.cli.main import app


def test_version_and_help():
    runner = CliRunner()
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"mlpot {mlpot.__version__}"
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "md" in result.output
    assert "bench" not in result.output  # benchmarks live outside the package
