"""psmdb-backup-webhook: safe, automatic backups for Percona Server for MongoDB on Kubernetes."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("psmdb-backup-webhook")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+source"
