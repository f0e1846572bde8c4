"""metafs: a read-only FUSE filesystem that makes object-storage metadata first-class."""

__version__ = "0.1.0"
