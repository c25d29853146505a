"""ImapSource against the real Dovecot: TLS, login errors, incremental fetch, filing, IDLE, reconnects."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from mailflow.config import Section
from mailflow.errors import ConfigError, SourceError
from mailflow.sources.imap import KEYWORDS, ImapSource, parse_key
from mailflow.testing import make_request

from services import Services, require_services

pytestmark = pytest.mark.services


@pytest.fixture
def services() -> Services:
    return require_services()


def source(services: Services, tmp_path: Path, **values: str) -> ImapSource:
    settings = services.incoming(state_file="imap-state.json", **values)
    return ImapSource.from_section(Section("incoming", settings, tmp_path))


def crlf(raw: bytes) -> bytes:
    return re.sub(rb"\r?\n", b"\r\n", raw)


def test_imaps_verified_through_ca_file_fetches_oldest_first_without_marking_read(
    services: Services, tmp_path: Path
) -> None:
    folder = services.fresh_folder()
    sent = [make_request(subject=f"request {n}") for n in range(3)]
    for raw in sent:
        services.append(folder, raw)
    imap = source(services, tmp_path, folder=folder)
    try:
        fetched = list(imap.fetch())
    finally:
        imap.close()
    assert [crlf(mail.raw) for mail in fetched] == [crlf(raw) for raw in sent]
    assert [parse_key(mail.key)[2] for mail in fetched] == [1, 2, 3]
    assert all(mail.key.startswith(f"imap:{folder}:") for mail in fetched)
    with services.imap() as client:
        client.select_folder(folder, readonly=True)
        assert client.search(["SEEN"]) == []


def test_self_signed_certificate_is_refused_without_ca_file_naming_the_setting(
    services: Services, tmp_path: Path
) -> None:
    imap = source(services, tmp_path, folder="INBOX", ca_file="")
    with pytest.raises(SourceError, match=r"certificate.*\[incoming\] ca_file"):
        list(imap.fetch())


def test_starttls_with_ca_file_and_password_command(services: Services, tmp_path: Path) -> None:
    folder = services.fresh_folder()
    services.append(folder, make_request())
    imap = source(
        services,
        tmp_path,
        folder=folder,
        port=services["IMAP_PORT"],
        tls="starttls",
        password="",
        password_command="printf jobs-password",
    )
    try:
        assert len(list(imap.fetch())) == 1
    finally:
        imap.close()


def test_wrong_password_is_a_clear_error_naming_the_settings(services: Services, tmp_path: Path) -> None:
    imap = source(services, tmp_path, password="not-the-password")
    started = time.monotonic()
    with pytest.raises(SourceError) as refused:
        list(imap.fetch())
    assert "The mail server refused the username or password" in str(refused.value)
    assert "check [incoming] username and password" in str(refused.value)
    assert time.monotonic() - started < 5, "a refused login must not be retried as if the network failed"


def test_xoauth2_runs_the_token_command_and_names_it_when_refused(services: Services, tmp_path: Path) -> None:
    marker = tmp_path / "token-asked"
    imap = source(services, tmp_path, auth="xoauth2", oauth2_token_command=f"sh -c 'touch {marker}; echo ya29.token'")
    with pytest.raises(SourceError, match=r"\[incoming\] username and oauth2_token_command"):
        list(imap.fetch())
    assert marker.exists()


def test_tls_none_only_for_loopback(services: Services, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(ConfigError, match=r"\[incoming\] tls"):
        source(services, tmp_path, host="imap.example.com", tls="none")
    folder = services.fresh_folder()
    services.append(folder, make_request())
    with caplog.at_level(logging.WARNING):
        imap = source(services, tmp_path, folder=folder, tls="none", port=services["IMAP_PORT"], ca_file="")
    assert "without encryption" in caplog.text
    try:
        assert len(list(imap.fetch())) == 1
    finally:
        imap.close()


def test_missing_folder_names_the_setting(services: Services, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"\[incoming\] folder"):
        list(source(services, tmp_path, folder="No/Such/Folder").fetch())


def test_filing_moves_into_done_and_ignored_folders_created_if_absent(services: Services, tmp_path: Path) -> None:
    folder = services.fresh_folder()
    for n in range(3):
        services.append(folder, make_request(subject=f"m{n}"))
    imap = source(services, tmp_path, folder=folder, done_folder=f"{folder}/Done", ignored_folder=f"{folder}/Ignored")
    try:
        keys = [mail.key for mail in imap.fetch()]
        imap.file([(keys[0], "numbered")])
        imap.file([(keys[1], "ignored")])
        imap.file([(keys[2], "failed")])
        imap.file([(keys[0], "numbered")])  # again: nothing happens
        assert list(imap.fetch()) == []
    finally:
        imap.close()
    with services.imap() as client:
        counts = {
            name: len(client.select_folder(name, readonly=True) and client.search(["ALL"]))
            for name in (folder, f"{folder}/Done", f"{folder}/Ignored")
        }
    assert counts == {folder: 0, f"{folder}/Done": 1, f"{folder}/Ignored": 2}


def test_flag_filing_marks_seen_with_a_keyword_and_leaves_mail_in_place(services: Services, tmp_path: Path) -> None:
    folder = services.fresh_folder()
    services.append(folder, make_request())
    imap = source(services, tmp_path, folder=folder, filing="flag")
    try:
        [mail] = list(imap.fetch())
        imap.file([(mail.key, "numbered")])
        assert list(imap.fetch()) == []
    finally:
        imap.close()
    with services.imap() as client:
        client.select_folder(folder, readonly=True)
        flags = client.get_flags([1])[1]
    assert b"\\Seen" in flags and KEYWORDS["done"].encode() in flags


def test_fetch_is_incremental_and_only_filing_moves_the_mark(services: Services, tmp_path: Path) -> None:
    folder = services.fresh_folder()
    services.append(folder, make_request(subject="first"))
    imap = source(services, tmp_path, folder=folder, filing="flag")
    try:
        [first] = list(imap.fetch())
        assert [m.key for m in imap.fetch()] == [first.key], "not filed (not known stored): offered again"
        imap.file([(first.key, "numbered")])
        services.append(folder, make_request(subject="second"))
        [second] = list(imap.fetch())
        assert parse_key(second.key)[2] == 2
    finally:
        imap.close()
    state = json.loads((tmp_path / "imap-state.json").read_text())[folder]
    assert state["last_uid"] == 1 and state["uidvalidity"] == parse_key(first.key)[1]


def _server_side_pids(port: str) -> list[int]:
    """Dovecot processes holding the server side of this process's connections to `port`."""
    mine = subprocess.run(
        ["ss", "-tnpH", "state", "established", f"( dport = :{port} )"], capture_output=True, text=True, check=True
    ).stdout
    local_ports = [
        m.group(1)
        for line in mine.splitlines()
        if f"pid={os.getpid()}," in line
        for m in [re.search(r"127\.0\.0\.1:(\d+)\s+127\.0\.0\.1:" + port, line)]
        if m
    ]
    pids = []
    for local in local_ports:
        theirs = subprocess.run(
            ["ss", "-tnpH", "state", "established", f"( sport = :{port} and dport = :{local} )"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        pids += [int(pid) for pid in re.findall(r"pid=(\d+)", theirs)]
    return pids


def test_connection_cut_mid_fetch_reconnects_and_loses_nothing(
    services: Services, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = services.fresh_folder()
    for n in range(5):
        services.append(folder, make_request(subject=f"m{n}"))
    imap = source(services, tmp_path, folder=folder, batch_size="2")
    uids = []
    try:
        with caplog.at_level(logging.WARNING):
            for mail in imap.fetch():
                uids.append(parse_key(mail.key)[2])
                if len(uids) == 1:
                    pids = _server_side_pids(services["IMAPS_PORT"])
                    assert pids, "could not find the server side of the connection"
                    for pid in pids:
                        os.kill(pid, signal.SIGKILL)
        assert uids == [1, 2, 3, 4, 5]
        assert "connection lost" in caplog.text and "reconnected" in caplog.text
    finally:
        imap.close()


def test_idle_reports_new_mail_within_two_seconds(services: Services, tmp_path: Path) -> None:
    folder = services.fresh_folder()
    imap = source(services, tmp_path, folder=folder, idle="yes")
    try:
        assert imap.supports_idle()
        assert list(imap.fetch()) == []
        arrived: list[float] = []

        def deliver() -> None:
            time.sleep(0.5)
            arrived.append(time.monotonic())
            services.append(folder, make_request())

        threading.Thread(target=deliver).start()
        assert imap.wait_for_mail(10) is True
        assert time.monotonic() - arrived[0] < 2.0
        assert len(list(imap.fetch())) == 1
    finally:
        imap.close()


def test_idle_returns_false_when_nothing_arrives(services: Services, tmp_path: Path) -> None:
    imap = source(services, tmp_path, folder=services.fresh_folder(), idle="yes")
    try:
        started = time.monotonic()
        assert imap.wait_for_mail(1.0) is False
        assert 0.9 < time.monotonic() - started < 3
    finally:
        imap.close()
