"""The keys file parser accepts what ``trainapi keys add`` writes and refuses anything else by line number;
the key ring is open only when no keys file is configured."""

from __future__ import annotations

from trainapi.keys import KeyRing, add_key, hash_key, parse_keys, tenant_of

DIGEST = "0123456789abcdef" * 4


def test_parse_keys_accepts_what_keys_add_writes(tmp_path):
    path = tmp_path / "api_keys"
    key = add_key(path, "team-a")
    hashes, refused = parse_keys(path.read_text())
    assert hashes == {hash_key(key): "team-a"} and refused == []


def test_parse_keys_refuses_other_lines_by_number():
    text = "\n".join(
        [
            "# comment",
            "",
            f"ok:{DIGEST}",
            f"upper:{DIGEST.upper()}",
            f"spaced : {DIGEST}",
            "nocolon",
            f"bad tenant:{DIGEST[:-1]}1",
            f"short:{DIGEST[:-1]}",
            f"other:{DIGEST}",
        ]
    )
    hashes, refused = parse_keys(text)
    assert hashes == {DIGEST: "ok"}
    assert [line for line, _ in refused] == [4, 5, 6, 7, 8, 9]
    assert "lower-case" in dict(refused)[4] and "already" in dict(refused)[9]


def test_key_ring_is_open_only_without_a_configured_file(tmp_path):
    assert KeyRing(None).open_mode
    missing = KeyRing(tmp_path / "nope")
    assert not missing.open_mode and missing.current() == {}
    empty = tmp_path / "empty"
    empty.write_text("")
    assert not KeyRing(empty).open_mode and KeyRing(empty).current() == {}


def test_key_ring_follows_the_file_and_fails_closed(tmp_path):
    path = tmp_path / "api_keys"
    key = add_key(path, "alpha")
    ring = KeyRing(path)
    assert tenant_of(ring.current(), key) == "alpha"
    path.write_text(f"alpha:{hash_key(key).upper()}\n")
    assert ring.current() == {}
    path.unlink()
    assert ring.current() == {}
    path.write_text(f"alpha:{hash_key(key)}\n")
    assert tenant_of(ring.current(), key) == "alpha"
