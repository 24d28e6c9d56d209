"""Issue 13 item 11: link security.

- ``forcecast keys new`` never writes through a pre-placed symbolic link and sets the modes it promises
  whatever the umask;
- device info carries no personal data and fits one 512-byte attribute in the worst case;
- pairing opens only after the local action (``forcecast edge pair`` over the service's Unix socket), not
  because the device restarted; bonded hosts still reconnect.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from edge.keys import PRIVATE_NAME, PUBLIC_NAME, load_private_key, load_public_key, new_key_pair
from forcecast.cli import main


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture(params=[0o000, 0o022, 0o077, 0o777], ids=lambda m: f"umask{m:03o}")
def umask(request):
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def test_key_files_and_folder_get_their_modes_whatever_the_umask(tmp_path, umask):
    private, public = new_key_pair(tmp_path / "new" / "keys")
    assert mode(tmp_path / "new" / "keys") == 0o700
    assert mode(private) == 0o600 and mode(public) == 0o644
    assert load_private_key(private).public_key() == load_public_key(public)


@pytest.mark.parametrize("name", [PUBLIC_NAME, PRIVATE_NAME])
@pytest.mark.parametrize("dangling", [False, True], ids=["to-a-file", "dangling"])
def test_a_pre_placed_symlink_is_refused_and_its_target_untouched(tmp_path, name, dangling):
    folder = tmp_path / "keys"
    folder.mkdir(mode=0o700)
    target = tmp_path / "victim.txt"
    if not dangling:
        target.write_text("precious\n")
    (folder / name).symlink_to(target)
    with pytest.raises(FileExistsError, match="symbolic link"):
        new_key_pair(folder)
    assert (target.read_text() == "precious\n") if not dangling else not target.exists()
    assert sorted(p.name for p in folder.iterdir()) == [name]  # no half pair left behind


def test_a_folder_that_is_a_symlink_or_writable_by_others_is_refused(tmp_path):
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(real)
    with pytest.raises(FileExistsError, match="is a symbolic link"):
        new_key_pair(tmp_path / "link")
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(FileExistsError, match="writable by other users"):
        new_key_pair(shared)
    assert list(real.iterdir()) == [] and list(shared.iterdir()) == []


def test_an_existing_private_key_is_never_overwritten(tmp_path):
    private, _public = new_key_pair(tmp_path / "k")
    before = private.read_bytes()
    (tmp_path / "k" / PUBLIC_NAME).unlink()
    with pytest.raises(FileExistsError, match="exists; move it away"):
        new_key_pair(tmp_path / "k")
    assert private.read_bytes() == before


def test_keys_new_on_the_command_line_refuses_a_symlink_with_exit_2(tmp_path, capsys):
    folder = tmp_path / "keys"
    folder.mkdir(mode=0o700)
    (folder / PUBLIC_NAME).symlink_to(tmp_path / "elsewhere.pub")
    assert main(["keys", "new", "--out", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "symbolic link" in err and "Traceback" not in err and not (tmp_path / "elsewhere.pub").exists()
