"""glg.config.variants: each variant's `dvc exp run` line sets exactly its switches over
params.yaml."""

import shlex
from pathlib import Path

import pytest
import yaml

from glg.config import parse_section
from glg.config.variants import VARIANTS, dvc_command, variant_config
from glg.errors import GlgError

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("row", VARIANTS, ids=[v.name for v in VARIANTS])
def test_the_dvc_command_trains_the_variant(row):
    """What `dvc exp run -S model.key=value ...` does to params.yaml: YAML values over its own."""
    committed = yaml.safe_load((ROOT / "params.yaml").read_text())["model"]
    words = shlex.split(dvc_command(row))
    assert words[:3] == ["dvc", "exp", "run"] and words[3::2] == ["-S"] * len(row.model)
    overrides = dict(word.split("=", 1) for word in words[4::2])
    model = {**committed, **{key.removeprefix("model."): yaml.safe_load(value)
                             for key, value in overrides.items()}}
    assert parse_section("model", model) == variant_config(row.name,
                                                           parse_section("model", committed))


def test_an_unknown_variant_is_a_clear_error():
    with pytest.raises(GlgError, match="unknown variant 'ViT\\+LSt\\+Style'; allowed: ViT, "):
        variant_config("ViT+LSt+Style")
