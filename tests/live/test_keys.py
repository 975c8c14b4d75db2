"""API keys: format, hashing at rest, verify/revoke across stores and processes, usage, the CLI."""

from __future__ import annotations

import json
import multiprocessing
import random
import stat
import string
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from live.keys import (
    KeyRecord,
    KeyStore,
    KeyStoreError,
    default_state_dir,
    format_key_table,
    hash_token,
    parse_key_id,
)
from notsound.cli import main

URLSAFE = string.ascii_letters + string.digits + "-_"


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / "state")


def _forged(rng: random.Random, key_id: str | None = None) -> str:
    key_id = key_id or "".join(rng.choice("0123456789abcdef") for _ in range(8))
    return f"ns_{key_id}_" + "".join(rng.choice(URLSAFE) for _ in range(43))


def test_created_key_has_the_documented_shape_and_verifies(store):
    record, token = store.create(name="lab 2", max_streams=3)
    assert parse_key_id(token) == record.id
    assert len(token) == 3 + 8 + 1 + 43 and token.startswith(f"ns_{record.id}_")
    assert (record.name, record.admin, record.max_streams, record.revoked) == ("lab 2", False, 3, False)
    assert record.created.endswith("+00:00")
    assert store.verify(token) == record


def test_a_thousand_well_formed_forgeries_are_rejected(store):
    record, token = store.create()
    rng = random.Random(404)
    forgeries = {_forged(rng) for _ in range(500)}
    forgeries |= {_forged(rng, record.id) for _ in range(400)}  # the real id, a wrong secret
    while len(forgeries) < 1000:  # the real key with one character of the secret changed
        i = rng.randrange(12, len(token))
        forgeries.add(token[:i] + rng.choice(URLSAFE.replace(token[i], "")) + token[i + 1:])
    assert len(forgeries) == 1000 and token not in forgeries
    assert all(parse_key_id(f) is not None for f in forgeries)  # they get past the format check
    assert [f for f in forgeries if store.verify(f) is not None] == []
    assert store.verify(token) == record


@pytest.mark.parametrize("mangle", [
    lambda t: "xx" + t[2:],                 # wrong prefix
    lambda t: t.upper(),                    # upper-case id
    lambda t: t[:-1],                       # too short
    lambda t: t + "A",                      # too long
    lambda t: t[:-1] + "é",                 # non-ASCII
    lambda t: t + "A" * 200,                # over 200 characters
    lambda t: " " + t,                      # whitespace
    lambda t: t[:11] + "-" + t[12:],        # wrong separator
    lambda t: "",
])
def test_malformed_keys_are_rejected(store, mangle):
    _, token = store.create()
    assert store.verify(mangle(token)) is None


def test_non_strings_are_rejected(store):
    assert store.verify(None) is None  # type: ignore[arg-type]
    assert store.verify(b"ns_") is None  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory) -> KeyStore:
    store = KeyStore(tmp_path_factory.mktemp("keys"))
    store.create()
    return store


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_never_verifies(shared_store, text):
    assert shared_store.verify(text) is None


def test_revoked_key_is_rejected_and_still_listed(store):
    record, token = store.create(name="gone")
    assert store.revoke(record.id) is True
    assert store.verify(token) is None
    assert store.revoke(record.id) is True  # twice is fine
    assert [r.revoked for r in store.list() if r.id == record.id] == [True]
    assert store.revoked_ids() == {record.id}


def test_revoke_by_another_store_takes_effect_without_restart(tmp_path):
    worker = KeyStore(tmp_path)
    record, token = worker.create()
    assert worker.verify(token) == record  # loaded and cached
    assert KeyStore(tmp_path).revoke(record.id) is True  # e.g. the CLI
    assert worker.verify(token) is None
    assert worker.revoked_ids() == {record.id}


def test_key_created_by_another_store_verifies_at_once(tmp_path):
    worker = KeyStore(tmp_path)
    assert worker.verify(_forged(random.Random(1))) is None  # loads an empty store
    record, token = KeyStore(tmp_path).create(name="new")
    assert worker.verify(token) == record


def test_revoking_an_unknown_id_says_so(store):
    store.create()
    assert store.revoke("deadbeef") is False
    assert store.revoke("../../etc") is False
    assert store.revoked_ids() == set()


def test_ensure_admin_makes_one_admin_key_once(tmp_path):
    token = KeyStore(tmp_path).ensure_admin()
    assert token is not None
    record = KeyStore(tmp_path).verify(token)
    assert record is not None and record.admin
    assert KeyStore(tmp_path).ensure_admin() is None
    KeyStore(tmp_path).revoke(record.id)
    again = KeyStore(tmp_path).ensure_admin()  # no usable admin key left: a new one
    assert again is not None and again != token
    assert len(KeyStore(tmp_path).list()) == 2


def test_files_hold_no_plaintext_and_are_private(tmp_path):
    state = tmp_path / "state"
    store = KeyStore(state)
    tokens = [store.create(name=f"k{i}", admin=i == 0)[1] for i in range(3)]
    for token in tokens:
        store.record_use(token.split("_")[1], audio_s=2.5, stream=True)
    store.flush_usage()
    files = sorted(p.name for p in state.iterdir())
    assert "keys.json" in files and "keys.lock" in files
    assert [f for f in files if f.startswith("usage-")] == [store.usage_path.name]
    everything = "".join(p.read_text() for p in state.iterdir())
    for token in tokens:
        assert token not in everything and token.split("_", 2)[2] not in everything
    assert hash_token(tokens[0]) in (state / "keys.json").read_text()
    assert hash_token(tokens[0]) not in store.usage_path.read_text()
    assert stat.S_IMODE((state / "keys.json").stat().st_mode) == 0o600
    assert stat.S_IMODE(store.usage_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(state.stat().st_mode) == 0o700


def _create_many(state_dir: str, count: int, barrier) -> list[str]:
    store = KeyStore(state_dir)
    barrier.wait()
    return [store.create(name=f"p{i}")[1] for i in range(count)]


def test_concurrent_creates_from_two_processes_all_survive(tmp_path):
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Manager().Barrier(2)
    with ctx.Pool(2) as pool:
        results = [pool.apply_async(_create_many, (str(tmp_path), 20, barrier)) for _ in range(2)]
        tokens = [t for r in results for t in r.get(timeout=60)]
    assert len(set(tokens)) == 40
    store = KeyStore(tmp_path)
    assert len(store.list()) == 40
    assert all(store.verify(t) is not None for t in tokens)


@pytest.mark.parametrize("content", [
    b"{not json",
    b"",
    b"[]",
    b'{"version": 1, "keys": {}}',
    b'{"version": 2, "keys": []}',
    b'{"version": 1, "keys": [{"id": "deadbeef"}]}',
    b"\xff\xfe",
])
def test_damaged_key_file_is_an_error_naming_it(tmp_path, content):
    (tmp_path / "keys.json").write_bytes(content)
    store = KeyStore(tmp_path)
    with pytest.raises(KeyStoreError, match="keys.json"):
        store.verify(_forged(random.Random(2)))
    with pytest.raises(KeyStoreError, match=str(tmp_path)):
        store.ensure_admin()  # never a fresh admin key over a damaged file
    assert (tmp_path / "keys.json").read_bytes() == content


def test_usage_from_every_worker_shows_in_list(tmp_path):
    record, _ = KeyStore(tmp_path).create()
    one, two = KeyStore(tmp_path), KeyStore(tmp_path)
    one.record_use(record.id, audio_s=10.0, stream=True)
    one.record_use(record.id, audio_s=5.0)
    two.record_use(record.id, audio_s=1.5, stream=True)
    one.flush_usage()
    two.flush_usage()
    listed = {r.id: r for r in KeyStore(tmp_path).list()}[record.id]
    assert (listed.streams, listed.audio_s) == (2, 16.5)
    assert listed.last_used is not None


def test_usage_is_written_at_most_every_flush_interval(tmp_path):
    record, _ = KeyStore(tmp_path).create()
    lazy = KeyStore(tmp_path, usage_flush_s=3600)
    lazy.record_use(record.id, stream=True)
    assert not lazy.usage_path.exists()
    assert lazy.list()[0].streams == 1  # its own unwritten counts still show
    lazy.flush_usage()
    assert json.loads(lazy.usage_path.read_text())["keys"][record.id]["streams"] == 1
    eager = KeyStore(tmp_path, usage_flush_s=0)
    eager.record_use(record.id, audio_s=1.0)
    assert eager.usage_path.exists()


def test_damaged_usage_file_is_ignored(tmp_path):
    record, _ = KeyStore(tmp_path).create()
    (tmp_path / "usage-other-1-000000.json").write_text("{oops")
    assert KeyStore(tmp_path).list()[0].streams == 0


def test_bad_create_arguments_are_refused(store):
    for kwargs in ({"max_streams": -1}, {"max_streams": 10_001}, {"max_streams": True},
                   {"name": "x" * 65}, {"name": "bad\nname"}):
        with pytest.raises(ValueError):
            store.create(**kwargs)
    assert store.list() == []


def test_default_state_dir_follows_the_environment(tmp_path):
    assert default_state_dir({"NOTSOUND_STATE_DIR": str(tmp_path)}) == tmp_path
    assert default_state_dir({"XDG_STATE_HOME": str(tmp_path)}) == tmp_path / "notsound"
    assert default_state_dir({}).parts[-3:] == (".local", "state", "notsound")


def test_table_shows_usage_but_no_secret():
    record = KeyRecord(id="0a1b2c3d", name="room 5", admin=True, created="2024-05-01T09:30:00+00:00",
                       revoked=True, last_used="2024-05-02T10:00:00+00:00", streams=3, audio_s=3725.0)
    table = format_key_table([record])
    header, row = table.splitlines()
    assert header.split()[:3] == ["ID", "NAME", "ADMIN"]
    assert "0a1b2c3d" in row and "room 5" in row and "2024-05-01 09:30" in row and "1:02:05" in row


# -- CLI ---------------------------------------------------------------------------


def test_cli_create_list_revoke(tmp_path, capsys):
    state = ["--state-dir", str(tmp_path)]
    assert main(["keys", "create", "--name", "lab", "--max-streams", "2", *state]) == 0
    out, err = capsys.readouterr()
    token = out.strip()
    assert parse_key_id(token) is not None and "not be shown again" in err and token not in err
    record = KeyStore(tmp_path).verify(token)
    assert record is not None and (record.name, record.max_streams, record.admin) == ("lab", 2, False)

    assert main(["keys", "create", "--admin", *state]) == 0
    admin_token = capsys.readouterr().out.strip()

    assert main(["keys", "list", *state]) == 0
    listing = capsys.readouterr().out
    assert record.id in listing and "lab" in listing
    for secret in (token, admin_token, hash_token(token), token.split("_", 2)[2]):
        assert secret not in listing

    assert main(["keys", "revoke", record.id, *state]) == 0
    capsys.readouterr()
    assert KeyStore(tmp_path).verify(token) is None
    main(["keys", "list", *state])
    row = next(line for line in capsys.readouterr().out.splitlines() if record.id in line)
    assert row.split()[-1] == "yes"


def test_cli_revoke_unknown_id_fails(tmp_path, capsys):
    assert main(["keys", "revoke", "deadbeef", "--state-dir", str(tmp_path)]) == 1
    assert "no key with id 'deadbeef'" in capsys.readouterr().err


def test_cli_refuses_bad_values_and_damaged_files(tmp_path, capsys):
    assert main(["keys", "create", "--max-streams", "-1", "--state-dir", str(tmp_path)]) == 2
    assert "max_streams" in capsys.readouterr().err
    (tmp_path / "keys.json").write_text("{")
    assert main(["keys", "list", "--state-dir", str(tmp_path)]) == 1
    assert "keys.json" in capsys.readouterr().err


def test_cli_list_of_empty_folder_says_how_to_start(tmp_path, capsys):
    assert main(["keys", "list", "--state-dir", str(tmp_path / "new")]) == 0
    assert "notsound keys create --admin" in capsys.readouterr().out


def test_cli_state_dir_defaults_to_the_environment(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("NOTSOUND_STATE_DIR", str(tmp_path))
    assert main(["keys", "create"]) == 0
    assert KeyStore(tmp_path).verify(capsys.readouterr().out.strip()) is not None


def test_cli_keys_needs_an_action(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["keys"])
    assert exc.value.code == 2

