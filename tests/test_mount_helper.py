"""mount.fuse.metafs: mount(8)'s helper arguments -> metafs's command line (no kernel)."""

from __future__ import annotations

import pytest

from metafs import mount_helper
from metafs.errors import ConfigError


def test_mount_flags_are_accepted_and_options_passed_on():
    args, fake = mount_helper.translate(
        ["bkt/p", "/mnt/x", "-s", "-n", "-v", "-o", "rw,_netdev,endpoint-url=http://h:9000", "-t",
         "fuse.metafs"])
    assert (args, fake) == (["bkt/p", "/mnt/x", "-o", "rw,_netdev,endpoint-url=http://h:9000"], False)
    args, fake = mount_helper.translate(["bkt", "/mnt/x", "-fnv", "-ometadata-ttl=5", "-tfuse.metafs"])
    assert (args, fake) == (["bkt", "/mnt/x", "-o", "metadata-ttl=5"], True)


def test_another_namespace_and_a_wrong_argument_count_are_refused():
    with pytest.raises(ConfigError, match="another namespace"):
        mount_helper.translate(["bkt", "/mnt/x", "-N", "/proc/1/ns/mnt"])
    with pytest.raises(ConfigError, match=r"usage: mount\.fuse\.metafs"):
        mount_helper.translate(["bkt"])


def test_fake_checks_the_options_and_mounts_nothing(capsys):
    assert mount_helper.main(["bkt", "/nonexistent/x", "-f", "-o", "metadata-ttl=5,nofail"]) == 0
    assert mount_helper.main(["bkt", "/nonexistent/x", "-f", "-o", "no-such-option"]) == 1
    assert capsys.readouterr().err == "mount.fuse.metafs: unknown mount option 'no-such-option'\n"
