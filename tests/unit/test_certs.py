"""`webhook.certs`: certificate contents, chain verification, real TLS handshakes, idempotent issue and rotation,
atomic ordered writes, hot reload under load, and the `certs` command line."""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import ipaddress
import json
import logging
import os
import socket
import ssl
import threading
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import DNSName, IPAddress, PolicyBuilder, Store, VerificationError

from webhook import certs
from webhook.certs import (
    CA_CERT,
    CA_KEY,
    TLS_CERT,
    TLS_KEY,
    CertReloader,
    CertsError,
    add_certs_parser,
    ca_bundle_ops,
    cert_sans,
    cert_serial,
    load_or_create,
    make_ca,
    make_serving_cert,
    needs_rotation,
    not_after,
    parse_duration,
    parse_webhook_targets,
    secret_data,
    service_sans,
    write_dir,
)

pytestmark = pytest.mark.timeout(20)

SVC_SANS = service_sans("psmdb-backup-webhook", "psmdb-backup")
SANS = SVC_SANS + ["127.0.0.1"]
T0 = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def ca() -> tuple[bytes, bytes]:
    return make_ca("test-ca", 3650)


def load(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def verifier(ca_pem: bytes, subject, when: dt.datetime | None = None):
    builder = PolicyBuilder().store(Store(x509.load_pem_x509_certificates(ca_pem)))
    if when is not None:
        builder = builder.time(when)
    return builder.build_server_verifier(subject)


# ------------------------------------------------------------------ certificate contents


def test_service_sans_are_the_four_service_dns_names() -> None:
    assert service_sans("wh", "ns") == ["wh", "wh.ns", "wh.ns.svc", "wh.ns.svc.cluster.local"]
    assert service_sans("wh", "ns", "k8s.example.") == ["wh", "wh.ns", "wh.ns.svc", "wh.ns.svc.k8s.example"]
    with pytest.raises(ValueError, match="namespace"):
        service_sans("wh", "Bad_NS")


def test_serving_cert_has_dns_and_ip_sans_server_auth_and_is_not_a_ca(ca) -> None:
    cert_pem, key_pem = make_serving_cert(*ca, SANS + ["::1"], 90)
    cert = load(cert_pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == SVC_SANS
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == SANS[0]
    assert cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.SERVER_AUTH]
    )
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca is False
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey) and cert.public_key().curve.name == "secp256r1"
    assert certs.pair_matches(cert_pem, key_pem)
    assert key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")


def test_ca_and_serving_cert_key_identifiers_link_up(ca) -> None:
    ca_cert = load(ca[0])
    ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ca_cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    ku = ca_cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.key_cert_sign and ku.crl_sign
    cert = load(make_serving_cert(*ca, ["127.0.0.1"], 30)[0])
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    own_ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert own_ski == x509.SubjectKeyIdentifier.from_public_key(cert.public_key())
    cert.verify_directly_issued_by(ca_cert)


def test_not_before_is_a_few_minutes_in_the_past(ca) -> None:
    now = dt.datetime.now(dt.UTC)
    cert = load(make_serving_cert(*ca, ["a.example"], 30, now=now)[0])
    assert now - dt.timedelta(minutes=10) <= cert.not_valid_before_utc <= now - dt.timedelta(minutes=1)
    assert cert.not_valid_after_utc == (now + dt.timedelta(days=30)).replace(microsecond=0)


def test_chain_verifies_against_the_ca_for_dns_and_ip_names(ca) -> None:
    cert = load(make_serving_cert(*ca, SANS, 30)[0])
    for subject in (DNSName("psmdb-backup-webhook.psmdb-backup.svc"), IPAddress(ipaddress.ip_address("127.0.0.1"))):
        chain = verifier(ca[0], subject).verify(cert, [])
        assert [c.serial_number for c in chain] == [cert.serial_number, load(ca[0]).serial_number]
    with pytest.raises(VerificationError):
        verifier(ca[0], DNSName("other.example")).verify(cert, [])
    with pytest.raises(VerificationError):  # another CA does not vouch for it
        verifier(make_ca("other-ca", 30)[0], DNSName("psmdb-backup-webhook.psmdb-backup.svc")).verify(cert, [])


def test_serving_cert_never_outlives_its_ca() -> None:
    short_ca = make_ca("short", 10)
    cert = load(make_serving_cert(*short_ca, ["x.example"], 365)[0])
    assert cert.not_valid_after_utc == load(short_ca[0]).not_valid_after_utc


@pytest.mark.parametrize("sans", [[], ["bad name"], ["under_score.example"], ["-x.example"], ["a" * 64 + ".example"]])
def test_bad_sans_are_refused(ca, sans) -> None:
    with pytest.raises(ValueError):
        make_serving_cert(*ca, sans, 30)


def test_mismatched_ca_key_is_refused(ca) -> None:
    with pytest.raises(ValueError, match="does not belong"):
        make_serving_cert(ca[0], make_ca("other", 30)[1], ["x.example"], 30)


def test_long_first_san_leaves_subject_empty_and_san_critical(ca) -> None:
    long_name = "a" * 60 + "." + "b" * 10 + ".example"
    cert = load(make_serving_cert(*ca, [long_name], 30)[0])
    assert len(cert.subject) == 0
    assert cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).critical


def test_not_after_and_rotation_window(ca) -> None:
    cert_pem, _ = make_serving_cert(*ca, ["x.example"], 60, now=T0)
    assert not_after(cert_pem) == T0 + dt.timedelta(days=60)
    assert not needs_rotation(cert_pem, dt.timedelta(days=30), now=T0)
    assert not needs_rotation(cert_pem, dt.timedelta(days=30), now=T0 + dt.timedelta(days=29))
    assert needs_rotation(cert_pem, dt.timedelta(days=30), now=T0 + dt.timedelta(days=30))
    assert needs_rotation(cert_pem, dt.timedelta(0), now=T0 + dt.timedelta(days=61))


# ------------------------------------------------------------------ real TLS handshakes


async def _serve(context: ssl.SSLContext):
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"https://127.0.0.1:{port}/"


def trusting(ca_pem: bytes, handshakes: list[int] | None = None) -> ssl.SSLContext:
    """A client context whose only trust root is ``ca_pem``; records the server certificate serial of every
    completed handshake in ``handshakes`` (through the public ``sslobject_class`` hook)."""
    ctx = ssl.create_default_context(cadata=ca_pem.decode())
    if handshakes is not None:

        class Recording(ssl.SSLObject):
            def do_handshake(self) -> None:
                super().do_handshake()  # raises SSLWantReadError until the handshake is complete
                der = self.getpeercert(binary_form=True)
                handshakes.append(x509.load_der_x509_certificate(der).serial_number)

        ctx.sslobject_class = Recording
    return ctx


def test_tls_handshake_with_the_ca_as_only_trust_root(tmp_path, ca) -> None:
    cert_pem, key_pem = make_serving_cert(*ca, SANS, 30)
    write_dir(tmp_path, ca[0], cert_pem, key_pem)
    reloader = CertReloader(tmp_path)
    assert reloader.context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert reloader.expiry == not_after(cert_pem) and reloader.serial == cert_serial(cert_pem)

    async def main() -> None:
        runner, url = await _serve(reloader.context)
        handshakes: list[int] = []
        trust = trusting(ca[0], handshakes)
        try:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trust, force_close=True)) as s:
                async with s.get(url) as r:  # server_hostname 127.0.0.1: the IP SAN
                    assert await r.text() == "ok" and handshakes == [cert_serial(cert_pem)]
                async with s.get(url, server_hostname="psmdb-backup-webhook.psmdb-backup.svc") as r:
                    assert await r.text() == "ok"
                with pytest.raises(aiohttp.ClientConnectorCertificateError):
                    await s.get(url, server_hostname="not-in-the-cert.example")
            untrusting = trusting(make_ca("other", 30)[0])
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=untrusting)) as s:
                with pytest.raises(aiohttp.ClientConnectorCertificateError):
                    await s.get(url)
        finally:
            await runner.cleanup()

    asyncio.run(main())


def test_rotation_under_load_fails_no_request_and_new_connections_see_the_new_cert(tmp_path, ca) -> None:
    first, first_key = make_serving_cert(*ca, SANS, 30)
    write_dir(tmp_path, ca[0], first, first_key)
    reloader = CertReloader(tmp_path)
    total, rotations, workers, cap = 300, 5, 16, 3000  # at least `total` requests, and go on until rotations end

    async def main() -> None:
        runner, url = await _serve(reloader.context)
        watcher = asyncio.create_task(reloader.watch(0.005))
        seen: list[int] = []  # server serial of every handshake
        trust = trusting(ca[0], seen)
        written = [cert_serial(first)]
        failures: list[str] = []
        done = 0
        rotated = asyncio.Event()

        async def wait_for(n: int) -> None:
            while done < n:
                await asyncio.sleep(0.001)

        try:
            # force_close: every request is a new TCP connection and a new handshake
            connector = aiohttp.TCPConnector(ssl=trust, force_close=True, limit=workers)
            async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=10)) as s:

                async def worker() -> None:
                    nonlocal done
                    while (done < total or not rotated.is_set()) and done < cap:
                        try:
                            async with s.get(url) as r:
                                if r.status != 200 or await r.text() != "ok":
                                    failures.append(f"HTTP {r.status}")
                        except Exception as e:
                            failures.append(repr(e))
                        finally:
                            done += 1

                async def rotate() -> None:
                    for i in range(rotations):
                        await wait_for((i + 1) * total // (rotations + 1))  # spread rotations over the run
                        cert_pem, key_pem = make_serving_cert(*ca, SANS, 30)
                        # written from another thread, as an outside writer would. Rotations 1 and 3 are slow writers
                        # that leave a mismatched pair in place for several watch ticks and handshakes (new key + old
                        # cert, then new cert + old key, the order some other tool might use): the reloader must
                        # keep serving the old pair meanwhile
                        if i in (1, 3):
                            steps = [(TLS_KEY, key_pem, 0o600), (TLS_CERT, cert_pem, 0o644)][:: 1 if i == 1 else -1]
                            await asyncio.to_thread(certs.files._atomic_write, tmp_path / steps[0][0], *steps[0][1:])
                            await asyncio.sleep(0.03)  # > 5 watch ticks
                            await wait_for(done + 2 * workers)  # and handshakes made against the half-written pair
                            await asyncio.to_thread(certs.files._atomic_write, tmp_path / steps[1][0], *steps[1][1:])
                        else:
                            await asyncio.to_thread(write_dir, tmp_path, ca[0], cert_pem, key_pem)
                        written.append(cert_serial(cert_pem))
                    deadline = time.monotonic() + 5
                    while reloader.serial != written[-1] and time.monotonic() < deadline:
                        await asyncio.sleep(0.005)
                    await wait_for(done + workers)  # a few more connections on the final certificate
                    rotated.set()

                await asyncio.gather(rotate(), *(worker() for _ in range(workers)))
                requests = done
                async with s.get(url) as r:
                    assert await r.text() == "ok"
                final = seen[-1]
        finally:
            watcher.cancel()
            await runner.cleanup()
        assert failures == []
        assert total <= requests < cap and len(seen) == requests + 1  # force_close: one handshake per request
        assert set(seen) <= set(written)
        assert len(set(seen)) >= 4, "the rotations should have been seen by connections made during the run"
        assert final == written[-1] == reloader.serial
        assert reloader.reloads >= 3

    asyncio.run(main())


def test_established_connection_keeps_its_certificate_while_new_ones_get_the_new(tmp_path, ca) -> None:
    old, old_key = make_serving_cert(*ca, SANS, 30)
    write_dir(tmp_path, ca[0], old, old_key)
    reloader = CertReloader(tmp_path)

    async def main() -> None:
        runner, url = await _serve(reloader.context)
        handshakes: list[int] = []
        trust = trusting(ca[0], handshakes)
        try:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trust, limit=1)) as keep:
                async with keep.get(url) as r:
                    assert await r.text() == "ok"
                assert handshakes == [cert_serial(old)]
                new, new_key = make_serving_cert(*ca, SANS, 30)
                write_dir(tmp_path, ca[0], new, new_key)
                assert reloader.maybe_reload()
                async with keep.get(url) as r:  # the kept-alive connection carries on: no new handshake
                    assert await r.text() == "ok"
                assert handshakes == [cert_serial(old)]
                async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trust)) as fresh:
                    async with fresh.get(url) as r:
                        assert await r.text() == "ok"
                assert handshakes == [cert_serial(old), cert_serial(new)]
        finally:
            await runner.cleanup()

    asyncio.run(main())


# ------------------------------------------------------------------ reloader edge cases


def test_reloader_keeps_serving_the_old_pair_when_caught_mid_rotation(tmp_path, ca, caplog) -> None:
    old, old_key = make_serving_cert(*ca, SANS, 30)
    write_dir(tmp_path, ca[0], old, old_key)
    reloader = CertReloader(tmp_path)
    assert not reloader.maybe_reload()  # nothing changed
    new, new_key = make_serving_cert(*ca, SANS, 30)
    (tmp_path / TLS_KEY).write_bytes(new_key)  # the key has landed, the certificate not yet
    with caplog.at_level(logging.WARNING, logger="webhook.certs"):
        assert not reloader.maybe_reload()
        assert not reloader.maybe_reload()  # retried, but warned only once
    assert reloader.serial == cert_serial(old)
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    assert "does not belong" in caplog.text
    (tmp_path / TLS_CERT).write_bytes(new)
    assert reloader.maybe_reload()
    assert reloader.serial == cert_serial(new) and reloader.expiry == not_after(new)


def test_a_new_cert_beside_the_old_key_does_not_break_the_live_context(tmp_path, ca) -> None:
    # OpenSSL drops a context's key when a certificate that does not match it is loaded, so loading such a pair
    # straight into the live context would fail every later handshake; the reloader validates on a scratch context
    old, old_key = make_serving_cert(*ca, SANS, 30)
    write_dir(tmp_path, ca[0], old, old_key)
    reloader = CertReloader(tmp_path)
    new, new_key = make_serving_cert(*ca, SANS, 30)
    (tmp_path / TLS_CERT).write_bytes(new)
    assert not reloader.maybe_reload()

    async def main() -> None:
        runner, url = await _serve(reloader.context)
        handshakes: list[int] = []
        try:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trusting(ca[0], handshakes))) as s:
                async with s.get(url) as r:
                    assert await r.text() == "ok"
        finally:
            await runner.cleanup()
        assert handshakes == [cert_serial(old)]

    asyncio.run(main())
    (tmp_path / TLS_KEY).write_bytes(new_key)
    assert reloader.maybe_reload() and reloader.serial == cert_serial(new)


def test_reloader_ignores_a_rewrite_with_the_same_content_and_survives_missing_files(tmp_path, ca) -> None:
    cert_pem, key_pem = make_serving_cert(*ca, SANS, 30)
    write_dir(tmp_path, ca[0], cert_pem, key_pem)
    reloader = CertReloader(tmp_path)
    (tmp_path / TLS_CERT).unlink()
    (tmp_path / TLS_CERT).write_bytes(cert_pem)  # new inode, same bytes
    assert not reloader.maybe_reload() and reloader.reloads == 0
    (tmp_path / TLS_CERT).unlink()
    assert not reloader.maybe_reload()
    (tmp_path / TLS_CERT).write_bytes(b"garbage")
    assert not reloader.maybe_reload()
    assert reloader.serial == cert_serial(cert_pem)


def test_maybe_reload_never_raises(tmp_path, ca, monkeypatch, caplog) -> None:
    cert_pem, key_pem = make_serving_cert(*ca, SANS, 30)
    write_dir(tmp_path, ca[0], cert_pem, key_pem)
    reloader = CertReloader(tmp_path)

    def boom() -> bool:
        raise RuntimeError("unexpected")

    monkeypatch.setattr(reloader, "_maybe_reload", boom)
    with caplog.at_level(logging.ERROR, logger="webhook.certs"):
        assert reloader.maybe_reload() is False
    assert "reload check failed" in caplog.text and reloader.serial == cert_serial(cert_pem)


def test_reloader_without_files_says_what_to_do(tmp_path) -> None:
    with pytest.raises(CertsError, match="psmdb-backup certs"):
        CertReloader(tmp_path)


def test_watch_picks_up_new_files(tmp_path, ca) -> None:
    cert_pem, key_pem = make_serving_cert(*ca, SANS, 30)
    write_dir(tmp_path, ca[0], cert_pem, key_pem)
    reloader = CertReloader(tmp_path)

    async def main() -> None:
        task = asyncio.create_task(reloader.watch(0.01))
        new, new_key = make_serving_cert(*ca, SANS, 30)
        write_dir(tmp_path, ca[0], new, new_key)
        for _ in range(200):
            if reloader.serial == cert_serial(new):
                break
            await asyncio.sleep(0.01)
        task.cancel()
        assert reloader.serial == cert_serial(new)

    asyncio.run(main())


def test_watch_tells_the_server_of_each_new_pair_and_outlives_a_failing_callback(tmp_path, ca, caplog) -> None:
    """The admission server's expiry metric follows rotations through `on_reload` (no second loop of its own)."""
    cert_pem, key_pem = make_serving_cert(*ca, SANS, 30)
    write_dir(tmp_path, ca[0], cert_pem, key_pem)
    reloader = CertReloader(tmp_path)
    told: list[int] = []

    def on_reload(r: CertReloader) -> None:
        told.append(r.serial)
        if len(told) == 1:
            raise RuntimeError("metric backend down")

    async def rotate_and_wait() -> int:
        new, new_key = make_serving_cert(*ca, SANS, 30)
        write_dir(tmp_path, ca[0], new, new_key)
        for _ in range(300):
            if told and told[-1] == cert_serial(new):
                break
            await asyncio.sleep(0.01)
        return cert_serial(new)

    async def main() -> None:
        task = asyncio.create_task(reloader.watch(0.01, on_reload=on_reload))
        first = await rotate_and_wait()
        second = await rotate_and_wait()  # still watching after the callback raised
        task.cancel()
        assert told == [first, second]

    with caplog.at_level(logging.ERROR, logger="webhook.certs"):
        asyncio.run(main())
    assert "reload callback failed" in caplog.text


def test_the_admission_server_reports_the_expiry_of_a_rotated_certificate(tmp_path, ca) -> None:
    from webhook.admission.server import Settings, serve

    cert_pem, key_pem = make_serving_cert(*ca, SANS, 30)
    write_dir(tmp_path, ca[0], cert_pem, key_pem)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = Settings(listen_port=port, tls_dir=str(tmp_path), no_cluster=True, cert_check_interval=0.01)
    metric = "psmdb_backup_webhook_certificate_expiry_timestamp_seconds"

    async def expiry(session: aiohttp.ClientSession) -> float:
        async with session.get(f"https://127.0.0.1:{port}/metrics") as r:
            line = next(x for x in (await r.text()).splitlines() if x.startswith(metric + " "))
        return float(line.split()[1])

    async def main() -> None:
        started, stop = asyncio.Event(), asyncio.Event()
        server = asyncio.create_task(serve(settings, started=started, stop=stop))
        await asyncio.wait_for(started.wait(), 10)
        try:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trusting(ca[0]))) as session:
                assert await expiry(session) == not_after(cert_pem).timestamp()
                new, new_key = make_serving_cert(*ca, SANS, 60)
                write_dir(tmp_path, ca[0], new, new_key)
                for _ in range(300):
                    if await expiry(session) == not_after(new).timestamp():
                        break
                    await asyncio.sleep(0.01)
                assert await expiry(session) == not_after(new).timestamp()
        finally:
            stop.set()
            await server

    asyncio.run(main())


# ------------------------------------------------------------------ files


def test_write_dir_modes_order_and_no_leftovers(tmp_path, ca, monkeypatch) -> None:
    cert_pem, key_pem = make_serving_cert(*ca, SANS, 30)
    order: list[str] = []
    real_replace = os.replace

    def recording_replace(src, dst):
        order.append(Path(dst).name)
        return real_replace(src, dst)

    monkeypatch.setattr(certs.files.os, "replace", recording_replace)
    d = tmp_path / "certs"
    assert write_dir(d, ca[0], cert_pem, key_pem, ca_key_pem=ca[1]) == [CA_KEY, CA_CERT, TLS_KEY, TLS_CERT]
    assert order == [CA_KEY, CA_CERT, TLS_KEY, TLS_CERT]  # the CA first, and tls.crt (the commit point) last
    assert sorted(p.name for p in d.iterdir()) == sorted([CA_KEY, CA_CERT, TLS_KEY, TLS_CERT])
    assert {p.name: p.stat().st_mode & 0o777 for p in d.iterdir()} == {
        CA_KEY: 0o600,
        CA_CERT: 0o644,
        TLS_KEY: 0o600,
        TLS_CERT: 0o644,
    }
    assert (d / TLS_CERT).read_bytes() == cert_pem and (d / CA_KEY).read_bytes() == ca[1]
    order.clear()
    assert write_dir(d, ca[0], cert_pem, key_pem) == [] and order == []  # same bytes: nothing touched


def test_write_dir_refuses_a_mismatched_pair(tmp_path, ca) -> None:
    cert_pem, _ = make_serving_cert(*ca, SANS, 30)
    _, other_key = make_serving_cert(*ca, SANS, 30)
    with pytest.raises(ValueError, match="mismatched"):
        write_dir(tmp_path, ca[0], cert_pem, other_key)
    assert not (tmp_path / TLS_CERT).exists()


def test_failed_write_leaves_the_old_file_whole_and_no_temp_file(tmp_path, ca, monkeypatch) -> None:
    cert_pem, key_pem = make_serving_cert(*ca, SANS, 30)
    write_dir(tmp_path, ca[0], cert_pem, key_pem)
    new, new_key = make_serving_cert(*ca, SANS, 30)

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(certs.files.os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        write_dir(tmp_path, ca[0], new, new_key)
    assert (tmp_path / TLS_KEY).read_bytes() == key_pem and (tmp_path / TLS_CERT).read_bytes() == cert_pem
    assert sorted(p.name for p in tmp_path.iterdir()) == [CA_CERT, TLS_CERT, TLS_KEY]


def test_a_concurrent_reader_never_sees_a_partial_file(tmp_path, ca) -> None:
    pairs = [make_serving_cert(*ca, SANS, 30) for _ in range(4)]
    write_dir(tmp_path, ca[0], *pairs[0])
    stop = threading.Event()
    bad: list[str] = []
    reads = 0

    def reader() -> None:
        nonlocal reads
        while not stop.is_set():
            for name in (TLS_CERT, TLS_KEY):
                data = (tmp_path / name).read_bytes()
                try:
                    (load if name == TLS_CERT else certs.pki.load_key)(data)
                except ValueError as e:
                    bad.append(f"{name}: {e}")
            reads += 1

    t = threading.Thread(target=reader)
    t.start()
    try:
        for i in range(60):
            write_dir(tmp_path, ca[0], *pairs[i % len(pairs)])
    finally:
        stop.set()
        t.join()
    assert bad == [] and reads > 0


# ------------------------------------------------------------------ load_or_create


def test_load_or_create_creates_then_is_idempotent(tmp_path) -> None:
    first = load_or_create(tmp_path, SANS, now=T0)
    assert first.ca_created and first.cert_issued and set(first.written) == {CA_KEY, CA_CERT, TLS_KEY, TLS_CERT}
    mtimes = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    again = load_or_create(tmp_path, SANS, now=T0 + dt.timedelta(days=100))
    assert not again.ca_created and not again.cert_issued and again.written == () and again.reason == "valid"
    assert again.cert_pem == first.cert_pem and again.ca_pem == first.ca_pem
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == mtimes
    assert load_or_create(tmp_path, SANS[:2], now=T0).cert_pem == first.cert_pem  # a subset of the SANs is covered
    chain = verifier(first.ca_pem, IPAddress(ipaddress.ip_address("127.0.0.1")), T0 + dt.timedelta(days=1)).verify(
        load(first.cert_pem), []
    )
    assert len(chain) == 2


def test_load_or_create_reissues_for_a_missing_san_and_keeps_the_ca(tmp_path) -> None:
    first = load_or_create(tmp_path, ["127.0.0.1"], now=T0)
    second = load_or_create(tmp_path, ["127.0.0.1", "webhook.example"], now=T0)
    assert second.cert_issued and not second.ca_created and "webhook.example" in second.reason
    assert second.ca_pem == first.ca_pem and second.written == (TLS_KEY, TLS_CERT)
    assert cert_sans(second.cert_pem) == ["webhook.example", "127.0.0.1"]


def test_load_or_create_reissues_within_the_rotation_window(tmp_path) -> None:
    first = load_or_create(tmp_path, SANS, days=90, rotate_before=dt.timedelta(days=30), now=T0)
    kept = load_or_create(tmp_path, SANS, days=90, rotate_before=dt.timedelta(days=30), now=T0 + dt.timedelta(days=59))
    assert not kept.cert_issued
    later = T0 + dt.timedelta(days=61)
    rotated = load_or_create(tmp_path, SANS, days=90, rotate_before=dt.timedelta(days=30), now=later)
    assert rotated.cert_issued and not rotated.ca_created and "rotation window" in rotated.reason
    assert cert_serial(rotated.cert_pem) != cert_serial(first.cert_pem)
    assert not_after(rotated.cert_pem) == later + dt.timedelta(days=90)


def test_load_or_create_reissues_a_mismatched_or_missing_pair(tmp_path) -> None:
    first = load_or_create(tmp_path, SANS, now=T0)
    (tmp_path / TLS_KEY).write_bytes(make_ca("x", 1)[1])
    fixed = load_or_create(tmp_path, SANS, now=T0)
    assert fixed.cert_issued and "does not belong" in fixed.reason and fixed.ca_pem == first.ca_pem
    (tmp_path / TLS_CERT).unlink()
    assert load_or_create(tmp_path, SANS, now=T0).reason == "no tls.crt"


def test_expiring_ca_is_replaced_and_the_old_one_stays_in_the_bundle(tmp_path) -> None:
    kw = dict(days=30, ca_days=100, rotate_before=dt.timedelta(days=10))
    first = load_or_create(tmp_path, SANS, now=T0, **kw)
    later = T0 + dt.timedelta(days=95)
    rotated = load_or_create(tmp_path, SANS, now=later, **kw)
    assert rotated.ca_created and rotated.cert_issued
    bundle = x509.load_pem_x509_certificates(rotated.ca_pem)
    assert [c.serial_number for c in bundle][1:] == [load(first.ca_pem).serial_number]
    assert certs.pair_matches(rotated.ca_pem, (tmp_path / CA_KEY).read_bytes())  # ca.key is the new CA's
    load(rotated.cert_pem).verify_directly_issued_by(bundle[0])
    assert not_after(rotated.cert_pem) == later + dt.timedelta(days=30)


def test_seeded_directory_without_ca_key_keeps_a_valid_cert_and_rotates_with_a_new_ca(tmp_path, ca) -> None:
    cert_pem, key_pem = make_serving_cert(*ca, SANS, 365)
    write_dir(tmp_path, ca[0], cert_pem, key_pem)  # as seeded from a Secret: no ca.key
    kept = load_or_create(tmp_path, SANS)
    assert not kept.cert_issued and kept.cert_pem == cert_pem and kept.written == ()
    grown = load_or_create(tmp_path, SANS + ["extra.example"])
    assert grown.ca_created and grown.cert_issued
    serials = [c.serial_number for c in x509.load_pem_x509_certificates(grown.ca_pem)]
    assert serials[1:] == [load(ca[0]).serial_number]  # the old CA stays trusted while its cert may still be served


def test_load_or_create_refuses_a_window_longer_than_the_validity(tmp_path) -> None:
    with pytest.raises(ValueError, match="rotation window"):
        load_or_create(tmp_path, SANS, days=20, rotate_before=dt.timedelta(days=30))


# ------------------------------------------------------------------ Kubernetes helpers (pure parts)


def test_secret_data_is_base64_of_the_three_files() -> None:
    data = secret_data(b"CA", b"CERT", b"KEY")
    assert {k: base64.b64decode(v) for k, v in data.items()} == {"ca.crt": b"CA", "tls.crt": b"CERT", "tls.key": b"KEY"}


def test_ca_bundle_ops_touch_only_differing_entries_and_guard_by_name() -> None:
    ops = ca_bundle_ops([("a.example.com", None), ("b.example.com", "NEW"), ("c.example.com", "OLD")], "NEW")
    assert ops == [
        {"op": "test", "path": "/webhooks/0/name", "value": "a.example.com"},
        {"op": "add", "path": "/webhooks/0/clientConfig/caBundle", "value": "NEW"},
        {"op": "test", "path": "/webhooks/2/name", "value": "c.example.com"},
        {"op": "add", "path": "/webhooks/2/clientConfig/caBundle", "value": "NEW"},
    ]
    assert ca_bundle_ops([("a", "NEW")], "NEW") == []


def test_parse_duration_and_webhook_targets() -> None:
    assert parse_duration("30d") == dt.timedelta(days=30)
    assert parse_duration("1d12h") == dt.timedelta(days=1, hours=12)
    assert parse_duration("2w") == dt.timedelta(weeks=2) and parse_duration("0") == dt.timedelta(0)
    for bad in ("30", "d", "3x", "", "-1d"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    assert parse_webhook_targets(["mutating=m1,validating=v1", "validating=v2"]) == (["m1"], ["v1", "v2"])
    for bad in (["mutating"], ["other=x"], ["mutating="], ["validating=Bad_Name"]):
        with pytest.raises(ValueError):
            parse_webhook_targets(bad)


# ------------------------------------------------------------------ command line


def run_certs(capsys, *argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="psmdb-backup")
    add_certs_parser(parser.add_subparsers(dest="command", required=True))
    try:
        args = parser.parse_args(["certs", *argv])
        code = args.func(args)
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_writes_the_files_and_a_rerun_keeps_them(capsys, tmp_path) -> None:
    argv = [
        "--dir",
        str(tmp_path),
        "--san",
        "127.0.0.1",
        "--service",
        "wh",
        "--namespace",
        "ns",
        "--days",
        "90",
        "--rotate-before",
        "30d",
    ]
    code, out, err = run_certs(capsys, *argv)
    assert code == 0, err
    assert "CA: created" in out and "serving certificate: issued" in out
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == [
        CA_CERT,
        CA_KEY,
        TLS_CERT,
        TLS_KEY,
    ]
    cert_pem = (tmp_path / TLS_CERT).read_bytes()
    assert set(cert_sans(cert_pem)) == {"127.0.0.1", *service_sans("wh", "ns")}
    code, out, err = run_certs(capsys, *argv)
    assert code == 0, err
    assert "CA: kept" in out and "serving certificate: kept" in out and "files: unchanged" in out
    assert (tmp_path / TLS_CERT).read_bytes() == cert_pem


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "no names"),
        (["--san", "bad name"], "neither an IP address nor a DNS name"),
        (["--san", "x.example", "--service", "wh"], "--service and --namespace go together"),
        (["--san", "x.example", "--days", "20"], "must be shorter than --days"),
        (["--san", "x.example", "--days", "0"], "--days"),
        (["--san", "x.example", "--rotate-before", "30"], "invalid duration"),
        (["--san", "x.example", "--secret", "justname"], "invalid --secret"),
        (["--san", "x.example", "--patch-webhooks", "mutating"], "invalid --patch-webhooks"),
        (["--san", "x.example", "--secret", "ns/s", "--kubeconfig", "/nonexistent/kubeconfig"], "does not exist"),
    ],
)
def test_cli_bad_arguments_exit_2_with_a_sentence(capsys, tmp_path, argv, message) -> None:
    code, out, err = run_certs(capsys, "--dir", str(tmp_path / "d"), *argv)
    assert code == 2
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "d" / TLS_CERT).exists()


def test_cli_dir_that_is_a_file_is_a_usage_error(capsys, tmp_path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    code, _, err = run_certs(capsys, "--dir", str(f), "--san", "x.example")
    assert code == 2 and "not a directory" in err


# ------------------------------------------------------------------ Kubernetes storage (through webhook/kube)


class FakeKube:
    """call_api over a dict of objects by path: GET, POST (409 when present), merge PATCH with a resourceVersion
    precondition, JSON Patch (`test`/`add`) of webhook configurations."""

    def __init__(self, objects: dict[str, dict] | None = None) -> None:
        self.objects = objects or {}
        self.writes: list[tuple[str, str]] = []

    async def call_api(self, path, method, body=None, header_params=None, **_):
        from kubernetes_asyncio.client.exceptions import ApiException

        def refuse(status: int, reason: str, message: str) -> ApiException:
            exc = ApiException(status=status, reason=reason)
            exc.body = json.dumps({"message": message})
            return exc

        if method == "GET":
            if path not in self.objects:
                raise refuse(404, "Not Found", "not found")
            return self.objects[path]
        self.writes.append((method, path))
        if method == "POST":
            target = f"{path}/{body['metadata']['name']}"
            if target in self.objects:
                raise refuse(409, "Conflict", "already exists")
            self.objects[target] = {**body, "metadata": {**body["metadata"], "resourceVersion": "1"}}
            return self.objects[target]
        current = self.objects[path]
        if header_params["Content-Type"] == "application/merge-patch+json":
            if body["metadata"]["resourceVersion"] != current["metadata"]["resourceVersion"]:
                raise refuse(409, "Conflict", "the object has been modified")
            current["data"] = {**current.get("data", {}), **body["data"]}
            current["metadata"]["resourceVersion"] = str(int(current["metadata"]["resourceVersion"]) + 1)
            return current
        for op in body:  # JSON Patch
            _, _, i, *rest = op["path"].split("/")
            entry = current["webhooks"][int(i)]
            if op["op"] == "test":
                assert entry["name"] == op["value"]
            else:
                entry.setdefault("clientConfig", {})["caBundle"] = op["value"]
        return current


def test_secret_is_created_kept_and_updated_through_the_shared_layer(ca) -> None:
    cert_pem, key_pem = make_serving_cert(*ca, SANS, 30)
    kube = FakeKube()
    path = "/api/v1/namespaces/ns/secrets/tls"
    assert asyncio.run(certs.read_secret(kube, "ns", "tls")) is None
    assert asyncio.run(certs.store_secret(kube, "ns", "tls", ca[0], cert_pem, key_pem)) == "created"
    assert kube.objects[path]["type"] == "kubernetes.io/tls"
    assert asyncio.run(certs.store_secret(kube, "ns", "tls", ca[0], cert_pem, key_pem)) == "unchanged"
    kube.objects[path]["data"]["extra"] = "a2VwdA=="
    new, new_key = make_serving_cert(*ca, SANS, 30)
    assert asyncio.run(certs.store_secret(kube, "ns", "tls", ca[0], new, new_key)) == "updated"
    stored = asyncio.run(certs.read_secret(kube, "ns", "tls"))
    assert stored is not None and stored.cert_pem == new and kube.objects[path]["data"]["extra"] == "a2VwdA=="
    kube.objects[path]["type"] = "Opaque"
    with pytest.raises(CertsError, match="has type 'Opaque'"):
        asyncio.run(certs.store_secret(kube, "ns", "tls", ca[0], cert_pem, key_pem))


def test_ca_bundle_is_patched_and_refusals_read_as_sentences(ca) -> None:
    path = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/v"
    kube = FakeKube({path: {"webhooks": [{"name": "a.example.com"}, {"name": "b.example.com"}]}})
    [result] = asyncio.run(certs.patch_ca_bundle(kube, ca[0], validating_names=["v"]))
    assert (result.webhooks, result.changed) == (2, 2)
    assert all(w["clientConfig"]["caBundle"] for w in kube.objects[path]["webhooks"])
    assert asyncio.run(certs.patch_ca_bundle(kube, ca[0], validating_names=["v"]))[0].changed == 0
    with pytest.raises(CertsError, match="MutatingWebhookConfiguration 'm' not found; apply the webhook manifests"):
        asyncio.run(certs.patch_ca_bundle(kube, ca[0], mutating_names=["m"]))

    class Forbidden(FakeKube):
        async def call_api(self, path, method, body=None, header_params=None, **_):
            from kubernetes_asyncio.client.exceptions import ApiException

            exc = ApiException(status=403, reason="Forbidden")
            exc.body = '{"message": "secrets \\"tls\\" is forbidden: User \\"x\\" cannot get resource"}'
            raise exc

    with pytest.raises(CertsError, match=r"could not read Secret ns/tls: HTTP 403 Forbidden: .*lacks the RBAC"):
        asyncio.run(certs.read_secret(Forbidden(), "ns", "tls"))
