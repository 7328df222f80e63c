"""Config building: defaults < TOML recipe < flags; typos, wrong types and bad sizes refused."""

import pytest

from advkit import cli
from advkit.evaluate import EvaluateConfig
from advkit.finetune.config import FinetuneConfig
from advkit.config import build
from advkit.errors import UserError


def recipe(tmp_path, text: str, name="r.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_recipe_or_flags():
    cfg = build(FinetuneConfig, None, {"epochs": None, "lr": None})
    default = FinetuneConfig()
    assert default.precision == "auto" and cfg.precision in ("fp32", "bf16")  # resolved for this machine
    assert cfg == FinetuneConfig(precision=cfg.precision)


def test_recipe_keys_applied(tmp_path):
    cfg = build(FinetuneConfig, recipe(tmp_path, 'dataset = "agnews"\nepochs = 2\nlr = 3e-5\ntrain_limit = 100\n'), {})
    assert (cfg.dataset, cfg.epochs, cfg.lr, cfg.train_limit) == ("agnews", 2, 3e-5, 100)
    assert cfg.batch_size == FinetuneConfig().batch_size  # untouched keys keep their defaults


def test_flags_override_recipe(tmp_path):
    r = recipe(tmp_path, 'epochs = 2\nlr = 3e-5\nmodel = "tiny-random-en"\n')
    cfg = build(FinetuneConfig, r, {"epochs": 5, "lr": None, "model": "minilm-l6"})
    assert (cfg.epochs, cfg.lr, cfg.model) == (5, 3e-5, "minilm-l6")  # None means "flag not given"


def test_command_table_form(tmp_path):
    # Top-level keys apply to every command reading the recipe; each command's table wins over them.
    r = recipe(tmp_path, 'seed = 3\nbatch_size = 4\n\n[finetune]\nepochs = 4\nbatch_size = 8\n\n'
                         '[evaluate]\nsplit = "test"\n')
    ft = build(FinetuneConfig, r, {})
    assert (ft.seed, ft.epochs, ft.batch_size) == (3, 4, 8)
    ev = build(EvaluateConfig, r, {})
    assert (ev.seed, ev.split, ev.batch_size) == (3, "test", 4)
    # A top-level key that one command lacks is refused for it (no silent typos), so it goes in a table.
    with pytest.raises(UserError, match="unknown key 'epochs'"):
        build(EvaluateConfig, recipe(tmp_path, "epochs = 2\n[evaluate]\nlimit = 5\n", "s.toml"), {})


def test_command_key_in_recipe_is_allowed(tmp_path):
    assert build(FinetuneConfig, recipe(tmp_path, 'command = "finetune"\nepochs = 1\n'), {}).epochs == 1


def test_int_is_accepted_for_a_float(tmp_path):
    cfg = build(FinetuneConfig, recipe(tmp_path, "lr = 1\n"), {})
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float)


@pytest.mark.parametrize("text,suggestion", [
    ("epoch = 2\n", "epochs"),
    ("[finetune]\nbatchsize = 8\n", "batch_size"),
    ("trainlimit = 10\n", "train_limit"),
    ("[finetun]\nepochs = 2\n", "finetune"),  # a typo'd table must not be silently ignored
])
def test_unknown_recipe_key_refused_with_closest_name(tmp_path, text, suggestion):
    with pytest.raises(UserError, match=rf"r\.toml: unknown .*\(did you mean '\[?{suggestion}'?\]?\?\)"):
        build(FinetuneConfig, recipe(tmp_path, text), {})


def test_unknown_flag_refused_with_closest_name():
    with pytest.raises(UserError, match=r"unknown setting 'max_lenght' \(did you mean 'max_length'\?\)"):
        build(FinetuneConfig, None, {"max_lenght": 64})


@pytest.mark.parametrize("text,what", [
    ('epochs = "3"\n', "integer"),
    ("epochs = true\n", "integer"),
    ("train_limit = 2.5\n", "integer"),
    ('lr = "fast"\n', "number"),
    ("model = 3\n", "string"),
    ("epochs = [1, 2]\n", "integer"),
])
def test_wrong_type_refused(tmp_path, text, what):
    key = text.split(" ")[0]
    with pytest.raises(UserError, match=rf"key '{key}' must be an? {what}"):
        build(FinetuneConfig, recipe(tmp_path, text), {})


@pytest.mark.parametrize("key,value", [
    ("epochs", 0), ("epochs", -1), ("batch_size", 0), ("lr", 0.0), ("lr", -1e-5), ("max_length", 0),
    ("train_limit", 0), ("limit", -5),
])
def test_zero_or_negative_sizes_refused(tmp_path, key, value):
    flag = "--" + key.replace("_", "-")
    with pytest.raises(UserError, match=rf"{flag} must be positive"):
        build(FinetuneConfig, None, {key: value})
    with pytest.raises(UserError, match=rf"{flag} must be positive"):
        build(FinetuneConfig, recipe(tmp_path, f"{key} = {value}\n"), {})


@pytest.mark.parametrize("key", ["batch_size", "max_length", "limit"])
def test_zero_sizes_refused_for_evaluate(key):
    with pytest.raises(UserError, match="must be positive"):
        build(EvaluateConfig, None, {key: 0})


def test_other_bad_values_refused():
    with pytest.raises(UserError, match=r"--warmup-ratio must be between 0 and 1"):
        build(FinetuneConfig, None, {"warmup_ratio": 1.5})
    with pytest.raises(UserError, match=r"--method must be one of .*did you mean 'ce'"):
        build(FinetuneConfig, None, {"method": "cee"})
    with pytest.raises(UserError, match=r"--device must be cpu or cuda"):
        build(FinetuneConfig, None, {"device": "tpu"})
    assert build(FinetuneConfig, None, {"device": "cuda:1"}).device == "cuda:1"


def test_bad_recipe_files(tmp_path):
    with pytest.raises(UserError, match="recipe file not found"):
        build(FinetuneConfig, tmp_path / "absent.toml", {})
    with pytest.raises(UserError, match="not valid TOML"):
        build(FinetuneConfig, recipe(tmp_path, "epochs = = 2\n"), {})
    (tmp_path / "latin1.toml").write_bytes(b'model = "caf\xe9"\n')
    with pytest.raises(UserError, match="not UTF-8"):
        build(FinetuneConfig, tmp_path / "latin1.toml", {})


def test_every_command_config_has_defaults_that_pass_its_checks():
    for cls in cli.COMMANDS.values():
        build(cls, None, {})


def test_recipe_error_through_cli(tmp_path, cli):
    r = recipe(tmp_path, "[finetune]\nepoch = 2\n")
    res = cli("finetune", "--recipe", r, "--out", tmp_path / "run")
    assert res.code == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines() == [f"error: {r}: unknown key 'epoch' (did you mean 'epochs'?)"]
    assert not (tmp_path / "run").exists()
    res = cli("evaluate", "--batch-size", "0")
    assert res.code == 2 and res.stderr.strip() == "error: --batch-size must be positive, got 0"


def test_every_recipe_of_the_tables_reads_into_its_commands_settings():
    """recipes/**/*.toml: each table ([finetune], [poison], [attack-zh]; top-level keys: finetune's) holds only
    settings its command knows, with the right types, and builds a config that passes its checks."""
    import tomllib
    from pathlib import Path

    from advkit.attack_zh.config import AttackZhConfig
    from advkit.poison.config import PoisonConfig

    classes = {"finetune": FinetuneConfig, "poison": PoisonConfig, "attack-zh": AttackZhConfig,
               "evaluate": EvaluateConfig}
    flags = {"attack-zh": {"model": "minilm-l6"}, "evaluate": {"trigger": "cf bb"}}  # what table.sh adds
    judges = Path(__file__).resolve().parents[1] / "recipes" / "zh" / "judges.toml"  # a map, not a recipe
    recipes = sorted(set((Path(__file__).resolve().parents[1] / "recipes").rglob("*.toml")) - {judges})
    assert len(recipes) >= 12
    for path in recipes:
        tables = [k for k, v in tomllib.loads(path.read_text(encoding="utf-8")).items() if isinstance(v, dict)]
        for command in tables or ["finetune"]:
            cfg = build(classes[command], path, flags.get(command, {}))
            assert cfg.COMMAND == command, path


def test_each_chinese_victim_is_judged_by_a_registered_model_of_another_family():
    from advkit.attack_zh.table import JUDGES
    from advkit.models import REGISTRY

    assert JUDGES and all(REGISTRY[v].architecture != REGISTRY[j].architecture for v, j in JUDGES.items())
    assert all(REGISTRY[j].language == "zh" and not REGISTRY[j].tiny for j in JUDGES.values())
