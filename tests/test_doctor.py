"""`mailflow doctor` against the real servers: plain words, the setting to change, nothing sent unless asked."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from mailflow.cli import main
from mailflow.config import load_settings
from mailflow.doctor import CHECKS, DoctorOptions, Finding, run_checks
from mailflow.testing import make_settings

from services import Services, require_services


@pytest.fixture
def services() -> Services:
    return require_services()


def doctor(settings: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--config", str(settings), "doctor", *args])
    return result.exit_code, result.output


@pytest.mark.services
def test_healthy_mailbox_and_server_pass_and_nothing_is_sent(services: Services, tmp_path: Path) -> None:
    before = len(services.sink_envelopes())
    code, output = doctor(services.settings_ini(tmp_path, incoming={"idle": "yes"}, outgoing={}))
    assert code == 0, output
    assert "logged in as jobs@example.test" in output
    assert "folder 'INBOX' opened" in output and "IDLE offered" in output
    assert f"logged in as {services['SMTP_USER']}" in output
    assert "All checks passed." in output
    assert len(services.sink_envelopes()) == before


@pytest.mark.services
def test_wrong_passwords_are_reported_with_the_settings_to_change(services: Services, tmp_path: Path) -> None:
    settings = services.settings_ini(tmp_path, incoming={"password": "wrong"}, outgoing={"password": "wrong"})
    code, output = doctor(settings)
    assert code == 1
    assert "PROBLEM  [incoming] The mail server refused the username or password" in output
    assert "check [incoming] username and password" in output
    assert "check [outgoing] username and password" in output
    assert "2 problem(s) found" in output


@pytest.mark.services
def test_missing_ca_file_and_wrong_port_are_named(services: Services, tmp_path: Path) -> None:
    settings = services.settings_ini(tmp_path, incoming={"ca_file": ""}, outgoing={"port": services["IMAP_PORT"]})
    code, output = doctor(settings)
    assert code == 1
    assert "[incoming] ca_file" in output
    assert "[outgoing]" in output and "PROBLEM  [outgoing]" in output


@pytest.mark.services
def test_send_test_delivers_one_message(services: Services, tmp_path: Path) -> None:
    code, output = doctor(
        services.settings_ini(tmp_path, incoming={}, outgoing={}), "--send-test", "seeker@example.test"
    )
    assert code == 0, output
    assert "test message sent to seeker@example.test" in output
    sent = [raw for raw in services.sink_messages_to("seeker@example.test") if b"mailflow doctor" in raw]
    assert sent, "the test message did not reach the server"


def test_the_embedded_default_needs_no_server(tmp_path: Path) -> None:
    code, output = doctor(make_settings(tmp_path / "site"))
    assert code == 0, output
    assert "[incoming] backend maildir: nothing to connect to" in output


def test_checks_are_a_list_another_role_can_join(tmp_path: Path) -> None:
    settings = load_settings(make_settings(tmp_path / "site"))

    def check_extra(settings: object, options: DoctorOptions) -> list[Finding]:
        raise RuntimeError("boom")

    findings = run_checks(settings, DoctorOptions(), [*CHECKS, check_extra])
    assert [finding.area for finding in findings][:3] == ["incoming", "outgoing", "blog"]
    assert not findings[-1].ok and "boom" in findings[-1].text
