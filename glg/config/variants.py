"""The paper's model variants in one table: each name as the paper writes it, its `model` params
and the tables that report it (paper Tables I-V, which thesis Tables 4.2-4.6 repeat, and thesis
Table 4.7). The README's variant table and the report read them from here.

`lst` changes only the landmarks the loader hands over (paper Eq. 3, `glg.data`), not the networks;
`Style` has no flow estimator, so its backbone is moot and left to params.yaml, and it has no flow
for `model.flow_prior` to add to (the demo's prior is switched off for it).
"""

from __future__ import annotations

import dataclasses
from typing import Literal, NamedTuple

from glg.config import LandmarkMode, ModelConfig, parse_section
from glg.errors import GlgError


class Variant(NamedTuple):
    """One row: the name as the paper's tables write it, its `model` switches, where reported."""

    name: str
    backbone: Literal["vit", "resnet"] | None  # None: no flow estimator, so no backbone
    landmark_mode: LandmarkMode
    style: bool
    flow: bool
    tables: tuple[str, ...]  # the tables that report it: paper I-V, "thesis 4.7"

    @property
    def model(self) -> dict[str, str | bool]:
        """The `model` params that make this variant, over params.yaml's."""
        backbone = {"backbone": self.backbone} if self.backbone else {}
        no_prior = {} if self.flow else {"flow_prior": "none"}
        return {**backbone, "landmark_mode": self.landmark_mode, "style": self.style,
                "flow": self.flow, **no_prior}


ALL = ("I", "II", "III", "IV", "V")  # the baselines appear in every table of the paper

VARIANTS: tuple[Variant, ...] = (
    #       name                 backbone  landmark_mode style flow tables
    Variant("ViT",               "vit",    "driving", False, True,  ALL),
    Variant("ResNet",            "resnet", "driving", False, True,  ALL),
    Variant("ViT+LSt",           "vit",    "lst",     False, True,  ("IV",)),
    Variant("ResNet+LSt",        "resnet", "lst",     False, True,  ("IV",)),
    Variant("ViT+LGAN",          "vit",    "lgan",    False, True,  ("IV",)),
    Variant("ResNet+LGAN",       "resnet", "lgan",    False, True,  ("IV",)),
    Variant("Style",             None,     "driving", True,  False, ("V",)),
    Variant("ViT+Style",         "vit",    "driving", True,  True,  ("V",)),
    Variant("ResNet+Style",      "resnet", "driving", True,  True,  ("V", "thesis 4.7")),
    Variant("ViT+LGAN+Style",    "vit",    "lgan",    True,  True,  ("III",)),
    # thesis Table 4.7 writes it "ResNet+Style+LGAN"
    Variant("ResNet+LGAN+Style", "resnet", "lgan",    True,  True,  ("III", "thesis 4.7")),
)


def variant(name: str) -> Variant:
    """The row of the paper's variant `name`."""
    for row in VARIANTS:
        if row.name == name:
            return row
    raise GlgError(f"unknown variant {name!r}; allowed: {', '.join(v.name for v in VARIANTS)}")


def variant_config(name: str, base: ModelConfig | None = None) -> ModelConfig:
    """`base` (the default sizes when None) with the switches of the paper's variant `name`."""
    return parse_section("model", {**dataclasses.asdict(base or ModelConfig()),
                                   **variant(name).model})


def variant_name(config: ModelConfig) -> str | None:
    """The paper's name of the variant `config` sets the switches of, or None for another one."""
    for row in VARIANTS:
        if all(getattr(config, key) == value for key, value in row.model.items()):
            return row.name
    return None


def dvc_command(row: Variant) -> str:
    """The `dvc exp run` line that trains `row` with everything else from params.yaml."""
    return "dvc exp run " + " ".join(f"-S model.{key}={_yaml(value)}"
                                     for key, value in row.model.items())


def _yaml(value: str | bool) -> str:
    """A params value as YAML (and so `dvc exp run -S`) writes it."""
    return str(value).lower() if isinstance(value, bool) else value
