"""Certificates for the admission webhooks: a private CA, a serving certificate, and keeping both fresh.

Four layers, each a module of this package and usable on its own (plus ``cli``, the ``psmdb-backup certs`` command):

* ``pki`` -- pure functions (``cryptography`` only): :func:`make_ca`, :func:`make_serving_cert`, :func:`service_sans`,
  :func:`not_after`, :func:`needs_rotation`, :func:`cert_sans`, :func:`cert_serial`;
* ``files`` -- :func:`write_dir` (atomic, ordered) and :func:`load_or_create` (idempotent issue/rotate);
* ``store`` -- Kubernetes (async, ``kubernetes_asyncio``): :func:`store_secret`, :func:`read_secret`, :func:`patch_ca_bundle`;
* ``reload`` -- the server side: :class:`CertReloader`, one ``ssl.SSLContext`` whose certificate is swapped in place when the
  files change, so a rotation needs no restart and never drops a connection.

Files in a certificate directory: ``ca.crt`` (the CA bundle to trust: the current CA first, then any older CA that
is still valid, so a CA rotation does not break servers still presenting a certificate from the old CA), ``ca.key``
(the current CA's key; absent when the directory was seeded from a Secret), ``tls.crt`` and ``tls.key`` (the
serving pair, the names a ``kubernetes.io/tls`` Secret uses).

**Write order.** Every file is replaced atomically (temporary file in the same directory, ``fsync``,
``os.replace``), so a reader sees either the whole old file or the whole new one. A *pair* of files cannot be
replaced atomically, though, so the order is chosen to make the intermediate states harmless:

1. ``ca.key`` then ``ca.crt`` -- the new CA is trusted (and its key is in place) before anything it signed appears;
2. ``tls.key`` then ``tls.crt`` -- ``tls.crt`` is the commit point: once it is new, the key beside it is new too.
   A reader that looks between the two steps sees a new key with the old certificate. :class:`CertReloader`
   validates a pair before loading it, so it keeps serving the old certificate and picks up the complete pair on
   its next tick. Key first is also the order that is safe for a less careful reader: OpenSSL refuses a key that
   does not match the context's certificate and leaves the old pair in place, whereas loading a *certificate* that
   does not match the context's key makes it drop that key, after which every handshake fails (checked in
   ``tests/unit/test_certs.py``). Certificate first would also let the file a watcher keys on land before its key.

Concurrent ``load_or_create`` calls on one directory are serialised with an advisory ``flock``.
"""

from .cli import add_certs_parser, cmd_certs, parse_duration, parse_webhook_targets
from .files import CertState, load_or_create, write_dir
from .pki import (
    CA_CERT,
    CA_KEY,
    TLS_CERT,
    TLS_KEY,
    CertsError,
    cert_sans,
    cert_serial,
    make_ca,
    make_serving_cert,
    needs_rotation,
    not_after,
    pair_matches,
    service_sans,
)
from .reload import CertReloader
from .store import ca_bundle_ops, patch_ca_bundle, read_secret, secret_data, store_secret

__all__ = [
    "CA_CERT",
    "CA_KEY",
    "TLS_CERT",
    "TLS_KEY",
    "CertReloader",
    "CertState",
    "CertsError",
    "add_certs_parser",
    "ca_bundle_ops",
    "cert_sans",
    "cert_serial",
    "cmd_certs",
    "load_or_create",
    "make_ca",
    "make_serving_cert",
    "needs_rotation",
    "not_after",
    "pair_matches",
    "parse_duration",
    "parse_webhook_targets",
    "patch_ca_bundle",
    "read_secret",
    "secret_data",
    "service_sans",
    "store_secret",
    "write_dir",
]
