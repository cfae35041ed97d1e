"""Typed params: one frozen dataclass per params.yaml section (`glg.config.sections`), validated
before any work.

`load_params("extract")` reads params.yaml (its floats as YAML 1.2 reads them, as DVC does),
checks every key of that section against the dataclass (unknown keys, wrong types, inf and nan,
out-of-range values) and returns the frozen config.
Any problem raises `ConfigError` with one line naming the key and what is allowed.
Defaults are the paper's values where the paper fixes one (the section is cited).
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from glg.config.sections import (LANDMARK_MODES, AnnotateConfig, DataConfig, EvaluateConfig,
                                 ExtractConfig, FederatedConfig, LandmarkMode, LganConfig,
                                 LossConfig, ModelConfig, PrepareConfig, SynthesizeConfig,
                                 TrainConfig, require)
from glg.errors import ConfigError

PARAMS_FILE = Path("params.yaml")


class ParamsLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` with YAML 1.2's floats, as DVC's ruamel reads params.yaml: `2e-4`,
    `1e5` and `.5` are numbers, not the strings YAML 1.1 makes of them."""


_FLOAT = "tag:yaml.org,2002:float"
ParamsLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _FLOAT]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
# ruamel.yaml's YAML 1.2 float pattern (ruamel/yaml/resolver.py), so DVC and the stages agree
ParamsLoader.add_implicit_resolver(_FLOAT, re.compile(r"""^(?:
     [-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |[-+]?\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X), list("-+0123456789."))


@dataclass(frozen=True)
class Params:
    """The whole params.yaml: top-level seed plus one config per section."""

    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    synthesize: SynthesizeConfig = field(default_factory=SynthesizeConfig)
    extract: ExtractConfig = field(default_factory=ExtractConfig)
    annotate: AnnotateConfig = field(default_factory=AnnotateConfig)
    prepare: PrepareConfig = field(default_factory=PrepareConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    lgan: LganConfig = field(default_factory=LganConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    federated: FederatedConfig = field(default_factory=FederatedConfig)


SECTIONS: dict[str, type] = {
    name: cls for name, cls in typing.get_type_hints(Params).items() if name != "seed"
}

# old name -> new: DVC's run cache leaves every params key named `size` or `nfiles`, at any
# depth, out of a run's key (treeverse/dvc#10296), so another size would restore the cached run
RENAMED = {"synthesize.size": "synthesize.frame_px", "extract.size": "extract.crop_px",
           "prepare.size": "prepare.image_px"}


# --- loading -------------------------------------------------------------------------------


def load_params(section: str | None = None, path: str | Path = PARAMS_FILE) -> Any:
    """Read and validate params.yaml; the whole `Params`, one section's config, or `"seed"`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found")
    try:
        raw = yaml.load(path.read_text(), Loader=ParamsLoader) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(raw).__name__}")
    params = parse_params(raw)
    if section is None:
        return params
    if section != "seed" and section not in SECTIONS:
        raise ConfigError(f"unknown params section {section!r}; allowed: {', '.join(SECTIONS)}")
    return getattr(params, section)


def parse_params(raw: dict) -> Params:
    """Validate a params mapping (as read from YAML) into `Params`; missing keys take defaults."""
    unknown = sorted(set(raw) - set(SECTIONS) - {"seed"})
    if unknown:
        raise ConfigError(f"unknown params key {unknown[0]!r}; allowed: seed, "
                          f"{', '.join(SECTIONS)}")
    seed = _coerce("seed", raw.get("seed", 0), int)
    require(seed >= 0, "seed", "an integer >= 0", seed)
    sections = {name: parse_section(name, raw.get(name) or {}) for name in SECTIONS}
    return Params(seed=seed, **sections)


def parse_section(name: str, raw: Any) -> Any:
    """Validate one section's mapping into its frozen dataclass."""
    cls = SECTIONS[name]
    if not isinstance(raw, dict):
        raise ConfigError(f"{name} must be a mapping of keys, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    allowed = [f.name for f in dataclasses.fields(cls)]
    values = {}
    for key, value in raw.items():
        if f"{name}.{key}" in RENAMED:
            raise ConfigError(f"params key {name}.{key} was renamed {RENAMED[f'{name}.{key}']} "
                              f"(DVC's run cache ignores keys named {key}, treeverse/dvc#10296)")
        if key not in allowed:
            raise ConfigError(f"unknown params key {name}.{key}; allowed: {', '.join(allowed)}")
        values[key] = _coerce(f"{name}.{key}", value, hints[key])
    config = cls(**values)
    config.check()
    return config


def to_dict(config: Any) -> dict:
    """A config as plain data, for checkpoints and results."""
    return dataclasses.asdict(config)


# --- helpers -------------------------------------------------------------------------------


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """Check one YAML value against its annotation; ints are accepted where floats are, a list
    of numbers where a tuple of floats is."""
    if typing.get_origin(hint) is tuple and typing.get_args(hint)[-1] is Ellipsis:
        kind = typing.get_args(hint)[0]
        require(isinstance(value, (list, tuple)), key, "a list", value)
        return tuple(_coerce(key, v, kind) for v in value)
    if typing.get_origin(hint) is tuple:
        n = len(typing.get_args(hint))
        require(isinstance(value, (list, tuple)) and len(value) == n, key,
                f"a list of {n} numbers", value)
        return tuple(_coerce(key, v, float) for v in value)
    if typing.get_origin(hint) is Literal:
        choices = typing.get_args(hint)
        require(value in choices, key, "one of " + ", ".join(map(str, choices)), value)
        return value
    if hint is bool:
        require(isinstance(value, bool), key, "true or false", value)
        return value
    if hint is int:
        require(isinstance(value, int) and not isinstance(value, bool), key, "an integer", value)
        return value
    if hint is float:
        require(isinstance(value, (int, float)) and not isinstance(value, bool), key, "a number",
                value)
        try:
            number = float(value)
        except OverflowError:  # an integer past the floats' range
            number = math.inf if value > 0 else -math.inf
        if not math.isfinite(number):  # .inf, .nan: the sections' `x > 0` checks let inf through
            raise ConfigError(f"{key}: expected a finite number, got {number}")
        return number
    if hint is str:
        require(isinstance(value, str), key, "a string", value)
        return value
    raise TypeError(f"{key}: unsupported annotation {hint!r}")
