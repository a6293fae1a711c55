"""Config loading, overrides, validation and the YAML round trip."""

from pathlib import Path

import pytest

from kgreason.config import Config, ConfigError, config_from_dict, load_config, parse_override, save_config

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def test_defaults_load_without_file():
    config = load_config()
    assert config.model.num_latents == 4
    assert config.graph.max_nodes == 200
    assert config.data.strict is True


@pytest.mark.parametrize("name", ["default.yaml", "tiny.yaml", "csqa.yaml", "obqa.yaml"])
def test_shipped_configs_load(name):
    config = load_config(CONFIGS / name)
    assert isinstance(config, Config)


@pytest.mark.parametrize("name", ["default.yaml", "tiny.yaml", "csqa.yaml", "obqa.yaml"])
def test_shipped_configs_name_their_command(name):
    header = (CONFIGS / name).read_text().splitlines()[:6]
    assert any("python -m kgreason." in line for line in header if line.startswith("#"))


def test_round_trip_through_yaml(tmp_path):
    config = load_config(CONFIGS / "tiny.yaml", ["model.num_latents=3", "train.lr=0.0005"])
    path = tmp_path / "config.yaml"
    save_config(config, path)
    reloaded = load_config(path)
    assert reloaded == config
    assert reloaded.model.num_latents == 3


def test_round_trip_through_dict():
    config = load_config(None, ["graph.sources=[cn100k]"])
    assert config_from_dict(config.to_dict()) == config


def test_overrides_apply_in_order():
    config = load_config(CONFIGS / "tiny.yaml", ["model.num_latents=5", "model.num_latents=6"])
    assert config.model.num_latents == 6


def test_override_types_parse_as_yaml():
    config = load_config(None, ["train.max_steps=10", "data.max_examples=null", "model.lora=true", "train.lr=3e-4"])
    assert config.train.max_steps == 10
    assert config.data.max_examples is None
    assert config.model.lora is True
    assert config.train.lr == pytest.approx(3e-4)


def test_int_accepted_for_float():
    config = load_config(None, ["train.lr=1"])
    assert config.train.lr == 1.0
    assert isinstance(config.train.lr, float)


def test_unknown_key_rejected_with_name():
    with pytest.raises(ConfigError, match="model.num_latent'"):
        load_config(None, ["model.num_latent=4"])


def test_unknown_section_rejected():
    with pytest.raises(ConfigError, match="unknown section 'modle'"):
        load_config(None, ["modle.num_latents=4"])


def test_wrong_type_names_key_and_type():
    with pytest.raises(ConfigError) as error:
        load_config(None, ["model.num_latents=four"])
    assert "model.num_latents" in str(error.value)
    assert "int" in str(error.value)


def test_bool_rejected_for_int():
    with pytest.raises(ConfigError, match="train.epochs"):
        load_config(None, ["train.epochs=true"])


def test_string_rejected_for_bool():
    with pytest.raises(ConfigError, match="expects bool"):
        load_config(None, ["data.strict=maybe"])


def test_list_items_checked():
    with pytest.raises(ConfigError, match=r"graph.sources\[1\]"):
        load_config(None, ["graph.sources=[cn100k, 3]"])


def test_enumeration_checked():
    with pytest.raises(ConfigError, match="distill.mode"):
        load_config(None, ["distill.mode=telepathy"])


def test_range_checked():
    with pytest.raises(ConfigError, match="model.num_latents"):
        load_config(None, ["model.num_latents=0"])


def test_override_without_equals_rejected():
    with pytest.raises(ConfigError, match="key=value"):
        parse_override("model.num_latents")


def test_override_into_scalar_rejected():
    with pytest.raises(ConfigError, match="not a config section"):
        load_config(None, ["train.lr.x=1"])


def test_unknown_key_in_file_rejected(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  num_latents: 4\n  hidden: 3\n")
    with pytest.raises(ConfigError, match="model.hidden"):
        load_config(path)


def test_wrong_type_in_file_rejected(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  batch_size: eight\n")
    with pytest.raises(ConfigError, match="train.batch_size"):
        load_config(path)


def test_invalid_yaml_names_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("model:\n  num_latents: [4\n  dropout: 0.1\n")
    with pytest.raises(ConfigError, match="broken.yaml") as caught:
        load_config(path)
    message = str(caught.value)
    assert "\n" not in message
    assert "at line 3, column 10" in message


def test_max_examples_must_be_positive():
    with pytest.raises(ConfigError, match="data.max_examples"):
        load_config(None, ["data.max_examples=0"])
    assert load_config(None, ["data.max_examples=3"]).data.max_examples == 3


def test_missing_file_named():
    with pytest.raises(ConfigError, match="no-such.yaml"):
        load_config("no-such.yaml")


def test_section_must_be_mapping(tmp_path):
    path = tmp_path / "flat.yaml"
    path.write_text("model: 3\n")
    with pytest.raises(ConfigError, match="'model' must be a mapping"):
        load_config(path)
