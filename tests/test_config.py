from pathlib import Path

import pytest
import yaml

from glg.config import ConfigError, load_params, parse_params, to_dict

ROOT = Path(__file__).resolve().parents[1]


def test_committed_params_are_valid_and_complete():
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    params = load_params(path=ROOT / "params.yaml")
    for section, values in raw.items():
        if isinstance(values, dict):
            assert set(values) == set(to_dict(getattr(params, section))), section


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"extract": {"crop_px": -3}}, "extract.crop_px must be a positive multiple of 2, got -3"),
        ({"extract": {"crop_px": 255}},
         "extract.crop_px must be a positive multiple of 2, got 255"),
        ({"extract": {"sise": 256}}, "unknown params key extract.sise; allowed: crop_px,"),
        ({"extrakt": {}}, "unknown params key 'extrakt'"),
        ({"model": {"backbone": "vgg"}}, "model.backbone must be one of vit, resnet, got 'vgg'"),
        ({"model": {"style": "yes"}}, "model.style must be true or false, got 'yes'"),
        ({"extract": {"fps": "fast"}}, "extract.fps must be a number, got 'fast'"),
        ({"extract": {"workers": 1.5}}, "extract.workers must be an integer, got 1.5"),
        ({"seed": -1}, "seed must be an integer >= 0, got -1"),
        ({"extract": [1, 2]}, "extract must be a mapping of keys, got list"),
        ({"train": {"betas": 0.5}}, "train.betas must be a list of 2 numbers, got 0.5"),
        ({"train": {"betas": [0.5, 1.0]}}, "train.betas must be two numbers in [0, 1), got [0.5, "),
        ({"train": {"device": "tpu"}}, "train.device must be one of auto, cpu, cuda, got 'tpu'"),
        ({"lgan": {"noise_dim": -1}}, "lgan.noise_dim must be an integer >= 0, got -1"),
        ({"lgan": {"lr": 0}}, "lgan.lr must be a positive number, got 0.0"),
        ({"model": {"lgan_hidden": 8}}, "unknown params key model.lgan_hidden; allowed: backbone,"),
    ],
)
def test_bad_values_name_the_key(raw, message):
    with pytest.raises(ConfigError) as err:
        parse_params(raw)
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_ints_are_accepted_as_floats():
    assert parse_params({"extract": {"fps": 30}}).extract.fps == 30.0
    assert parse_params({"train": {"betas": [0, 0.99]}}).train.betas == (0.0, 0.99)


def test_load_one_section(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("seed: 3\nextract:\n  crop_px: 128\n")
    assert load_params("extract", path).crop_px == 128
    assert load_params("seed", path) == 3
    with pytest.raises(ConfigError, match="unknown params section"):
        load_params("nope", path)


@pytest.mark.parametrize(("old", "new"), [("synthesize.size", "synthesize.frame_px"),
                                          ("extract.size", "extract.crop_px"),
                                          ("prepare.size", "prepare.image_px")])
def test_a_renamed_key_fails_naming_its_new_name(tmp_path, old, new):
    section, key = old.split(".")
    path = tmp_path / "params.yaml"
    path.write_text(f"{section}:\n  {key}: 128\n")
    with pytest.raises(ConfigError) as err:
        load_params(section, path)
    assert str(err.value) == (f"params key {old} was renamed {new} (DVC's run cache ignores "
                              "keys named size, treeverse/dvc#10296)")


def test_broken_yaml_is_one_line(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("extract: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(path=path)
    with pytest.raises(ConfigError, match="params file not found"):
        load_params(path=tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("synthesize:\n  seconds: .inf\n", "synthesize.seconds: expected a finite number, got inf"),
        ("extract:\n  fps: .inf\n", "extract.fps: expected a finite number, got inf"),
        ("train:\n  lr: .nan\n", "train.lr: expected a finite number, got nan"),
        ("loss:\n  l1: -.inf\n", "loss.l1: expected a finite number, got -inf"),
        ("train:\n  betas: [.inf, 0.9]\n", "train.betas: expected a finite number, got inf"),
        ("synthesize:\n  seconds: 1" + "0" * 400 + "\n",
         "synthesize.seconds: expected a finite number, got inf"),
    ],
    ids=["inf", "inf fps", "nan", "-inf", "inf in a list", "an integer past floats"],
)
def test_infinity_and_nan_are_one_line_errors(tmp_path, text, message):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_params(path=path)
    assert str(err.value) == message


def test_floats_are_read_as_dvc_reads_them(tmp_path):
    """YAML 1.1 (PyYAML's default) makes strings of `2e-4` and `1e5`; DVC's ruamel reads 1.2."""
    from dvc.utils.serialize import parse_yaml

    path = tmp_path / "params.yaml"
    path.write_text("lgan:\n  lr: 2e-4\n  reconstruction: 1e5\n  adversarial: .5\n"
                    "train:\n  lr: 1.0e+30\n  betas: [5e-1, 9.99E-1]\n")
    dvc = parse_yaml(path.read_text(), str(path))
    params = load_params(path=path)
    assert to_dict(params.lgan) | dvc["lgan"] == to_dict(params.lgan)
    assert params.lgan.lr == 0.0002 and params.lgan.reconstruction == 100000.0
    assert (params.train.lr, params.train.betas) == (dvc["train"]["lr"], (0.5, 0.999))
    path.write_text("extract:\n  fps: 2e-4x\n")  # still a string, still refused
    with pytest.raises(ConfigError, match="extract.fps must be a number, got '2e-4x'"):
        load_params(path=path)
