"""The CLI and API references in docs/ are generated from the code and must not go stale."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _generator():
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "gen_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = _generator()
GENERATED = GEN.generated()


@pytest.mark.parametrize("path", sorted(GENERATED), ids=lambda p: p.name)
def test_committed_reference_equals_generated(path: Path) -> None:
    assert path.exists(), f"{path} missing: run python scripts/gen_docs.py"
    assert path.read_text(encoding="utf-8") == GENERATED[path], (
        f"{path.relative_to(ROOT)} is stale: run python scripts/gen_docs.py"
    )


def test_cli_reference_lists_every_command_and_option() -> None:
    """Each command of the app, and each of its options, appears in docs/cli.md."""
    import typer

    from mlpot.cli.main import app

    text = GENERATED[GEN.CLI_PATH]
    root = typer.main.get_command(app)
    ctx = typer.Context(root, info_name="mlpot")
    seen = 0
    for name in root.list_commands(ctx):
        command = root.get_command(ctx, name)
        assert f"`mlpot {name}`" in text
        for param in command.params:
            for opt in param.opts if GEN._is_option(param) else ():
                assert f"`{opt}`" in text, f"mlpot {name}: {opt} missing"
                seen += 1
    assert seen > 50


def test_every_option_has_help() -> None:
    """No option of any command is left without a help text."""
    import typer

    from mlpot.cli.main import app

    root = typer.main.get_command(app)
    ctx = typer.Context(root, info_name="mlpot")
    groups = [("", root)]
    missing = []
    while groups:
        prefix, group = groups.pop()
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            if hasattr(command, "list_commands"):
                groups.append((f"{prefix}{name} ", command))
            missing += [
                f"mlpot {prefix}{name} {p.name}"
                for p in command.params
                if not (getattr(p, "help", None) or "").strip()
            ]
    assert not missing, missing
