"""The shipped reference vectors are checked, and a missing or altered file is reported (the tests then fail)."""

import shutil

from conftest import REFERENCE, check_reference


def test_shipped_reference_vectors_match_their_checksums():
    assert check_reference(REFERENCE) == []


def test_an_altered_or_missing_reference_file_is_reported(tmp_path):
    for f in REFERENCE.iterdir():
        shutil.copy(f, tmp_path / f.name)
    with open(tmp_path / "official_full_manifest.json", "ab") as f:
        f.write(b" ")
    (tmp_path / "official_tiny.ckpt").unlink()
    problems = check_reference(tmp_path)
    assert any("official_full_manifest.json: SHA-256 differs" in p for p in problems)
    assert any("official_tiny.ckpt: missing" in p for p in problems)
    assert len(problems) == 2
