"""Settings: documented once, loaded from TOML and environment, validated by key."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from qtraq_live.config import SETTINGS, Settings, example_toml, load_settings
from qtraq_live.errors import ConfigError
from qtraq_live.runtime.duties import open_context

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "qtraq.example.toml"


def write_config(tmp_path: Path, text: str) -> dict[str, str]:
    path = tmp_path / "qtraq.toml"
    path.write_text(text)
    return {"QTRAQ_CONFIG": str(path), "QTRAQ_DATA_DIR": str(tmp_path / "data")}


def example_comments_before(key: str) -> str:
    """The comment block right above ``key = ...`` in the example, joined into one line."""
    lines = EXAMPLE.read_text().splitlines()
    name = key.rpartition(".")[2]
    table = key.rpartition(".")[0]
    section = ""
    for i, line in enumerate(lines):
        if line.startswith("["):
            section = line.strip("[] ")
        if section == table and re.match(rf"{re.escape(name)} = ", line):
            block = []
            for prev in reversed(lines[:i]):
                if not prev.startswith("# "):
                    break
                block.insert(0, prev[2:])
            return " ".join(block)
    raise AssertionError(f"{key} is missing from {EXAMPLE.name}")


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.key)
def test_every_setting_is_documented_in_the_example(setting) -> None:
    comments = " ".join(example_comments_before(setting.key).split())
    assert " ".join(setting.help.split()) in comments, f"help text of {setting.key} not in the example"
    if setting.env:
        assert setting.env in comments


def test_example_file_is_up_to_date() -> None:
    assert EXAMPLE.read_text() == example_toml(), (
        "config/qtraq.example.toml is stale: python -m qtraq_live.config > config/qtraq.example.toml")


def test_example_loads_and_holds_the_defaults(tmp_path: Path) -> None:
    settings = load_settings({"QTRAQ_CONFIG": str(EXAMPLE), "QTRAQ_DATA_DIR": str(tmp_path)},
                             resolve_secret=False)
    for s in SETTINGS:
        expected = tmp_path.as_posix() if s.key == "data_dir" else s.default
        assert settings[s.key] == expected, s.key
    assert settings.seed == {}


def test_commented_seed_example_is_valid(tmp_path: Path) -> None:
    """The [[clinics]]/[[staff]] block documented (commented out) in the example parses."""
    text = EXAMPLE.read_text()
    seed = text[text.index("# [[clinics]]"):]
    toml_lines = [line[1:] for line in seed.splitlines() if re.match(r"#\s*(\[\[|\w+ = )", line)]
    uncommented = "\n".join(toml_lines)
    settings = load_settings(write_config(tmp_path, uncommented), resolve_secret=False)
    assert [c["id"] for c in settings.seed["clinics"]] == ["main"]
    assert [q["id"] for q in settings.seed["clinics"][0]["queues"]] == ["gp", "lab"]
    assert settings.seed["staff"][0]["password_env"] == "QTRAQ_ADMIN_PASSWORD"


def test_environment_overrides_file_overrides_default(tmp_path: Path) -> None:
    env = write_config(tmp_path, '[server]\nport = 9000\nhost = "0.0.0.0"\n')
    assert load_settings(env, resolve_secret=False)["server.port"] == 9000
    assert load_settings(env, resolve_secret=False)["server.workers"] == 1
    env["QTRAQ_PORT"] = "9100"
    settings = load_settings(env, resolve_secret=False)
    assert settings["server.port"] == 9100
    assert settings["server.host"] == "0.0.0.0"


@pytest.mark.parametrize(("text", "env", "key"), [
    ('[server]\nport = "eighty"\n', {}, "server.port"),
    ("[server]\nworkers = 1\n", {"QTRAQ_WORKERS": "0"}, "server.workers"),
    ('env = "staging"\n', {}, "env"),
    ("[server]\naccess_log = 3\n", {}, "server.access_log"),
    ("[hub]\nping_interval_s = true\n", {}, "hub.ping_interval_s"),
])
def test_bad_value_names_the_key(tmp_path: Path, text: str, env: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings({**write_config(tmp_path, text), **env}, resolve_secret=False)
    assert err.value.key == key
    assert repr(key) in err.value.message


@pytest.mark.parametrize(("text", "key"), [
    ("[server]\nprot = 8000\n", "server.prot"),
    ("colour = 'blue'\n", "colour"),
    ("[[clinics]]\nid = 'a'\nname = 'A'\ncolour = 'blue'\n", "clinics[0].colour"),
    ("[[clinics]]\nid = 'a'\nname = 'A'\n[[clinics.queues]]\nid = 'q'\nname = 'Q'\n", "clinics[0].queues[0].prefix"),
    ("[[staff]]\nusername = 'a'\nrole = 'admin'\npassword = 'secret123'\n", "staff[0].password"),
    ("[[staff]]\nusername = 'a'\nrole = 'admin'\n", "staff[0].password_env"),
    ("clinics = 'main'\n", "clinics"),
])
def test_unknown_or_missing_key_is_refused(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(write_config(tmp_path, text), resolve_secret=False)
    assert err.value.key == key


def test_missing_or_broken_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_settings({"QTRAQ_CONFIG": str(tmp_path / "nope.toml")})
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write_config(tmp_path, "[server\n"))


def test_secret_key_is_generated_once_and_private(tmp_path: Path) -> None:
    env = {"QTRAQ_DATA_DIR": str(tmp_path / "data")}
    first = load_settings(env).secret_key
    assert len(first) >= 32
    assert load_settings(env).secret_key == first
    mode = (tmp_path / "data" / "secret_key").stat().st_mode
    assert stat.S_IMODE(mode) == 0o600


def test_production_requires_a_secret_key(tmp_path: Path) -> None:
    env = {"QTRAQ_DATA_DIR": str(tmp_path), "QTRAQ_ENV": "production"}
    with pytest.raises(ConfigError) as err:
        load_settings(env)
    assert err.value.key == "secret_key"
    assert not (tmp_path / "secret_key").exists()
    ready = {**env, "QTRAQ_SECRET_KEY": "k" * 40, "QTRAQ_PUBLIC_URL": "https://q.example.org",
             "QTRAQ_GRIEVANCE_CONTACT": "Grievance Officer, g@clinic.example"}
    assert load_settings(ready).production


@pytest.mark.parametrize("missing", ["QTRAQ_PUBLIC_URL", "QTRAQ_GRIEVANCE_CONTACT"])
def test_production_requires_a_public_url_and_a_grievance_officer(tmp_path: Path, missing: str) -> None:
    """Links and QR codes never follow the Host header (issue #21 item 16); the privacy notice
    names a grievance officer (DPDP Rules)."""
    env = {"QTRAQ_DATA_DIR": str(tmp_path), "QTRAQ_ENV": "production", "QTRAQ_SECRET_KEY": "k" * 40,
           "QTRAQ_PUBLIC_URL": "https://q.example.org", "QTRAQ_GRIEVANCE_CONTACT": "Grievance Officer"}
    del env[missing]
    with pytest.raises(ConfigError) as err:
        load_settings(env)
    assert err.value.key == {"QTRAQ_PUBLIC_URL": "server.public_url",
                             "QTRAQ_GRIEVANCE_CONTACT": "privacy.grievance_contact"}[missing]


SEED = """
[[clinics]]
id = "north"
name = "North Clinic"
timezone = "Europe/London"
  [[clinics.queues]]
  id = "north-gp"
  name = "Dr. Rao"
  prefix = "N"
  self_checkin = true

[[staff]]
username = "boss"
role = "admin"
password_env = "TEST_SEED_BOSS_PASSWORD"

[[staff]]
username = "ghost"
role = "reception"
password_env = "TEST_SEED_UNSET_PASSWORD"
"""


async def test_seed_tables_are_applied_once(tmp_path: Path, settings: Settings,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from qtraq_live.runtime.seed import apply_config_seed

    env = {**write_config(tmp_path, SEED), "QTRAQ_REDIS_URL": settings.redis_url}
    seeded = load_settings(env)
    monkeypatch.setenv("TEST_SEED_BOSS_PASSWORD", "correct horse battery")
    monkeypatch.delenv("TEST_SEED_UNSET_PASSWORD", raising=False)
    async with open_context(seeded) as ctx:
        await apply_config_seed(ctx)
        version = await ctx.engine.version("north")
        await apply_config_seed(ctx)  # a restart: nothing new
        assert await ctx.engine.version("north") == version
        clinic = await ctx.engine.get_clinic("north")
        assert clinic is not None and clinic["timezone"] == "Europe/London"
        assert [q["id"] for q in clinic["queues"]] == ["north-gp"]
        assert clinic["queues"][0]["self_checkin"] in (True, 1, "1")
        users = await ctx.store.fetchall("SELECT username, role FROM users ORDER BY id")
        assert [(u["username"], u["role"]) for u in users] == [("boss", "admin")]
