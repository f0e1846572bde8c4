"""``mount.fuse.metafs``: the helper ``mount -t fuse.metafs`` and fstab lines run.

Why a helper of our own: without one, mount(8) runs ``mount.fuse3``, which
runs the type's program, ``metafs``, through ``/bin/sh`` with mount's own
PATH — and that PATH (``/usr/sbin:/usr/bin:/sbin:/bin`` at boot, in
``env -i``, under systemd's mount units with a minimal environment) does not
hold ``/usr/local/bin``, so the mount fails with ``/bin/sh: 1: metafs: not
found``.  mount(8) looks for ``/sbin/mount.<type>`` first; ``scripts/install.sh``
links ``/sbin/mount.fuse.metafs`` (``/usr/sbin`` on merged-/usr Debian) to
this entry point in metafs's own venv, which needs no PATH at all.

The calling convention is mount(8)'s "external helpers" one::

    mount.fuse.metafs SOURCE MOUNTPOINT [-sfnvrw] [-N NS] [-o OPTIONS] [-t TYPE]

``-s`` (sloppy), ``-n`` (no mtab), ``-v`` (verbose), ``-w`` and ``-t`` are
accepted and ignored; ``-r`` is already what metafs does; ``-f`` (fake)
checks the options and mounts nothing; ``-N`` (another mount namespace) is
refused.  The options are metafs's own (every long option, as
``name=value``; see :mod:`metafs.config`), the generic ones mount(8) and
systemd use being ignored.  The mount detaches as usual: mount(8) returns
once it is live, or with metafs's one-line reason and status 32 ("mount
failure") otherwise.
"""

from __future__ import annotations

import sys

from . import cli, errors
from .config import parse_args

MOUNT_USAGE = 1  # mount(8)'s "incorrect invocation or permissions"
MOUNT_FAILURE = 32  # mount(8)'s "mount failure"


def translate(argv: list[str]) -> tuple[list[str], bool]:
    """mount(8)'s helper arguments -> (metafs's arguments, fake)."""
    positional: list[str] = []
    options: list[str] = []
    fake = False
    it = iter(argv)
    for arg in it:
        if arg == "-o":
            options.append(next(it, ""))
        elif arg.startswith("-o") and len(arg) > 2:
            options.append(arg[2:])
        elif arg in ("-t", "-N") or (arg.startswith(("-t", "-N")) and len(arg) > 2):
            value = next(it, "") if arg in ("-t", "-N") else arg[2:]
            if arg.startswith("-N"):
                raise errors.ConfigError(f"mounting in another namespace (-N {value}) is not supported")
        elif arg.startswith("-") and len(arg) > 1 and set(arg[1:]) <= set("sfnvrw"):
            fake = fake or "f" in arg[1:]
        else:
            positional.append(arg)
    if len(positional) != 2:
        raise errors.ConfigError("usage: mount.fuse.metafs BUCKET[/PREFIX] MOUNTPOINT [-o OPTIONS]")
    out = list(positional)
    for o in options:
        out += ["-o", o]
    return out, fake


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args, fake = translate(argv)
        if fake:
            parse_args(args)  # -f: the options are checked, nothing is mounted
            return 0
    except errors.ConfigError as e:
        sys.stderr.write(f"mount.fuse.metafs: {e}\n")
        return MOUNT_USAGE
    code = cli.main(args)
    return {0: 0, 2: MOUNT_USAGE}.get(code, MOUNT_FAILURE)


if __name__ == "__main__":
    sys.exit(main())
