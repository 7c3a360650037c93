"""`fsfarm freeswitch bootstrap`: the few local files a stock FreeSWITCH needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from click.testing import CliRunner
from lxml import etree

from controller.cli import main

REQUIRED = {
    "mod_sofia",
    "mod_event_socket",
    "mod_xml_curl",
    "mod_conference",
    "mod_dptools",
    "mod_commands",
    "mod_dialplan_xml",
    "mod_voicemail",
    "mod_say_en",
    "mod_sndfile",
    "mod_native_file",
    "mod_tone_stream",
    "mod_opus",
    "mod_spandsp",
}


def run(dsn: str, *args: str, password: str = "s3cret", state_dir: Path | None = None) -> Any:
    env = {
        "FSFARM_XMLCURL_PASSWORD": password,
        "FSFARM_CONTROLLER_ADDRESS": "192.0.2.10",
        "FSFARM_XMLCURL_TIMEOUT": "4",
        "FSFARM_STATE_DIR": str(state_dir) if state_dir else None,
    }
    return CliRunner().invoke(main, ["freeswitch", "bootstrap", "--dsn", dsn, *args], env=env)


def test_bootstrap_writes_a_config_pointing_at_the_controller(dsn: str, farm: Any, tmp_path: Path) -> None:
    result = run(dsn, "--node", "vm", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    main_doc = (tmp_path / "freeswitch.xml").read_text()
    assert 'cmd="include" data="autoload_configs/*.xml"' in main_doc
    modules = etree.parse(str(tmp_path / "autoload_configs/modules.conf.xml"))
    loaded = [m.get("module") for m in modules.iter("load")]
    assert REQUIRED <= set(loaded)
    assert loaded.index("mod_xml_curl") < loaded.index("mod_sofia")  # sofia must read its config from us
    curl = etree.parse(str(tmp_path / "autoload_configs/xml_curl.conf.xml"))
    params = {p.get("name"): p for p in curl.iter("param")}
    assert params["gateway-url"].get("value") == "http://192.0.2.10:8080/xmlcurl"
    # "languages" is the section phrase macros are fetched as (FreeSWITCH never sends "phrases" to a binding).
    assert set(params["gateway-url"].get("bindings").split("|")) == {
        "directory",
        "dialplan",
        "configuration",
        "languages",
    }
    user, _, password = params["gateway-credentials"].get("value").partition(":")
    assert user == "vm" and len(password) >= 40  # the node's own credentials, not the shared password
    assert params["auth-scheme"].get("value") == "basic"
    assert params["timeout"].get("value") == "4"
    switch = {
        p.get("name"): p.get("value")
        for p in etree.parse(str(tmp_path / "autoload_configs/switch.conf.xml")).iter("param")
    }
    assert switch["switchname"] == "vm" and switch["rtp-start-port"] == "20000"
    assert switch["event-heartbeat-interval"] == "1"
    # The core database (and the calls sofia tracks) in the farm's PostgreSQL, in the node's own schema, with
    # mod_pgsql loaded before the core opens it.
    assert (
        switch["core-db-dsn"].startswith("pgsql://")
        and f"search_path=node_{farm['vm'].id.hex}" in switch["core-db-dsn"]
    )
    pre_load = etree.parse(str(tmp_path / "autoload_configs/pre_load_modules.conf.xml"))
    assert [m.get("module") for m in pre_load.iter("load")] == ["mod_pgsql"]
    assert (tmp_path / "autoload_configs/xml_curl.conf.xml").stat().st_mode & 0o077 == 0


def test_unknown_node_is_a_clear_error(dsn: str, farm: Any, tmp_path: Path) -> None:
    missing = run(dsn, "--node", "nope", "--out", str(tmp_path))
    assert missing.exit_code == 1 and "no node 'nope'" in missing.output
    assert not (tmp_path / "freeswitch.xml").exists()


def credentials(conf: Path) -> str:
    curl = etree.parse(str(conf / "autoload_configs/xml_curl.conf.xml"))
    return {p.get("name"): p.get("value") for p in curl.iter("param")}["gateway-credentials"]


def test_bootstrap_issues_new_credentials_unless_given_the_current_password(
    dsn: str, farm: Any, client: Any, tmp_path: Path
) -> None:
    """Only a hash is stored, so bootstrap writes a password it issues, or the one the operator was shown."""
    from test_node_credentials import basic, directory_fetch
    from xmlcurl_support import post

    first = run(dsn, "--node", "vm", "--out", str(tmp_path / "a"), password="")
    assert first.exit_code == 0, first.output
    old = credentials(tmp_path / "a")
    kept = run(dsn, "--node", "vm", "--out", str(tmp_path / "b"), "--xmlcurl-password", old.partition(":")[2])
    assert kept.exit_code == 0, kept.output
    assert credentials(tmp_path / "b") == old
    wrong = run(dsn, "--node", "vm", "--out", str(tmp_path / "c"), "--xmlcurl-password", "guess")
    assert wrong.exit_code == 1 and wrong.output.count("\n") == 1
    assert "--xmlcurl-password: not node vm's current xml_curl password" in wrong.output
    assert not (tmp_path / "c").exists()
    again = run(dsn, "--node", "vm", "--out", str(tmp_path / "d"), password="")
    new = credentials(tmp_path / "d")
    assert again.exit_code == 0 and new != old
    assert "xml_curl user: vm (new credentials: its previous password no longer works)" in again.output
    assert "xml_curl user: vm (the password given)" in kept.output
    (tmp_path / "a-file").write_text("")
    unwritable = run(dsn, "--node", "vm", "--out", str(tmp_path / "a-file" / "conf"), password="")
    assert unwritable.exit_code == 1 and "error: --out: cannot write" in unwritable.output
    assert unwritable.output.count("\n") == 1
    assert post(client, directory_fetch(), auth=basic(new)).status_code == 200  # not rotated by the failed run
    assert post(client, directory_fetch(), auth=basic(old)).status_code == 401  # the previous one stopped working


def test_bootstrap_points_at_where_fsfarm_up_listens_and_prints_the_command_line(
    dsn: str, farm: Any, tmp_path: Path
) -> None:
    from controller import runtime
    from controller.config import Settings

    state = tmp_path / "state"
    up = Settings(
        database_url=dsn,
        state_dir=state,
        embedded_pg_port=0,
        xmlcurl_user="freeswitch",
        xmlcurl_password="",
        controller_address="192.0.2.20",
    )
    runtime.record_listen(up, "0.0.0.0", 18080)  # what `fsfarm up --host 0.0.0.0 --port 18080` writes
    env = {
        "FSFARM_XMLCURL_PASSWORD": "s3cret",
        "FSFARM_CONTROLLER_ADDRESS": None,
        "FSFARM_HTTP_PORT": None,
        "FSFARM_STATE_DIR": str(state),
    }
    conf = tmp_path / "fs1"
    result = CliRunner().invoke(
        main, ["freeswitch", "bootstrap", "--dsn", dsn, "--node", "vm", "--out", str(conf)], env=env
    )
    assert result.exit_code == 0, result.output
    curl = etree.parse(str(conf / "autoload_configs/xml_curl.conf.xml"))
    params = {p.get("name"): p.get("value") for p in curl.iter("param")}
    assert params["gateway-url"] == "http://192.0.2.20:18080/xmlcurl"
    lines = result.output.splitlines()
    assert lines[-2] == "start FreeSWITCH with:"
    command = lines[-1].split()
    assert command[1:5] == ["-nonat", "-nc", "-conf", str(conf.resolve())]
    assert command[command.index("-run") + 1] == str(conf.resolve() / "run") and (conf / "run").is_dir()
    given = CliRunner().invoke(
        main,
        [
            "freeswitch",
            "bootstrap",
            "--dsn",
            dsn,
            "--node",
            "vm",
            "--out",
            str(conf),
            "--url",
            "http://10.1.2.3:9000/xmlcurl",
        ],
        env=env,
    )
    assert given.exit_code == 0 and "xml_curl: http://10.1.2.3:9000/xmlcurl" in given.output


def test_the_readme_tour_names_every_module_a_node_loads() -> None:
    from xmlcurl.bootstrap import MODULES

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    tour = readme[readme.index("## A short tour") : readme.index("### More of the CLI")]
    assert [m for m in MODULES if m not in tour] == []


def test_an_https_url_is_verified_by_freeswitch_against_the_given_ca(dsn: str, farm: Any, tmp_path: Path) -> None:
    url, ca = "https://ctl.example:8443/xmlcurl", "/etc/freeswitch/tls/fsfarm-ca.pem"
    result = run(dsn, "--node", "vm", "--out", str(tmp_path), "--url", url, "--ca-file", ca)
    assert result.exit_code == 0, result.output
    curl = etree.parse(str(tmp_path / "autoload_configs/xml_curl.conf.xml"))
    params = {p.get("name"): p.get("value") for p in curl.iter("param")}
    # mod_xml_curl's own names (it checks neither the chain nor the host unless these are true)
    assert params["gateway-url"] == url
    assert params["enable-cacert-check"] == "true" and params["enable-ssl-verifyhost"] == "true"
    assert params["ssl-cacert-file"] == ca
    plain = run(dsn, "--node", "vm", "--out", str(tmp_path / "plain"), "--ca-file", ca)
    assert plain.exit_code == 1 and "--ca-file is for an https xml_curl URL" in plain.output, plain.output
    assert not (tmp_path / "plain").exists()
