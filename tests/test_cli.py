"""What the stages and `glg` say when the disk refuses (read-only, full, a file where a folder
should be) or params hold inf: one line, exit code 1, through typer's CliRunner."""

import errno

import pytest
import typer
from typer.testing import CliRunner

from glg.cli import app as glg
from glg.errors import one_line_errors
from stages.synthesize import app as synthesize


def stage_raising(raised: Exception) -> typer.Typer:
    """A stage whose work raises `raised`, wrapped as every stage is."""
    stage = typer.Typer(add_completion=False)

    @stage.command()
    @one_line_errors
    def main() -> None:
        raise raised

    return stage


@pytest.mark.parametrize(
    ("raised", "line"),
    [
        (OSError(errno.EROFS, "Read-only file system", "data/frames/shard-0000.tar"),
         "error: data/frames/shard-0000.tar: Read-only file system"),
        (OSError(errno.ENOSPC, "No space left on device"),
         "error: [Errno 28] No space left on device"),  # a write() names no file
    ],
    ids=["read-only", "disk full"],
)
def test_a_disk_error_is_one_line_and_exit_1(raised, line):
    result = CliRunner().invoke(stage_raising(raised), [])
    assert result.exit_code == 1
    assert result.stderr == line + "\n"


def test_other_exceptions_are_not_swallowed():
    result = CliRunner().invoke(stage_raising(ValueError("a bug")), [])
    assert isinstance(result.exception, ValueError)  # its traceback is kept


def test_synthesize_into_a_file_is_one_line_and_keeps_the_file(tmp_path):
    out = tmp_path / "synthetic"
    out.write_text("keep me")
    (tmp_path / "params.yaml").write_text("synthesize:\n  identities: 1\n  seconds: 0.4\n")
    result = CliRunner().invoke(synthesize, ["--out", str(out),
                                             "--params", str(tmp_path / "params.yaml")])
    assert result.exit_code == 1
    assert result.stderr == f"error: {out}: Not a directory\n"
    assert out.read_text() == "keep me"


def test_synthesize_seconds_inf_is_one_line(tmp_path):
    (tmp_path / "params.yaml").write_text("synthesize:\n  seconds: .inf\n")
    result = CliRunner().invoke(synthesize, ["--out", str(tmp_path / "synthetic"),
                                             "--params", str(tmp_path / "params.yaml")])
    assert result.exit_code == 1
    assert result.stderr == "error: synthesize.seconds: expected a finite number, got inf\n"
    assert not (tmp_path / "synthetic").exists()


def test_report_into_a_file_is_one_line_and_keeps_the_file(tmp_path):
    (tmp_path / "exp.json").write_text("[]")
    out = tmp_path / "reports"
    out.write_text("keep me")
    result = CliRunner().invoke(glg, ["report", "--exp-json", str(tmp_path / "exp.json"),
                                      "--out", str(out)])
    assert result.exit_code == 1
    assert result.stderr == f"error: {out}: File exists\n"
    assert out.read_text() == "keep me"
