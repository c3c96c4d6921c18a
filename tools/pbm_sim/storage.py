"""Storage backends of the PBM simulator: they write REAL objects, laid out as PBM lays them out.

A backend is opened from a PBM `storage` config section (the dict `pbm config --file` was given, after the simulator's
`cast`): `{"type": "s3", "s3": {...}}`. Keys passed to the methods are relative to the storage root, i.e. to
`<bucket>/<prefix>` for s3/minio, `<container>/<prefix>` for azure and `<path>` for filesystem, exactly like PBM's
`storage.Storage` interface (`Save`, `SourceReader`, `FileStat`, `List`, `Delete`).

boto3 (s3, minio) and azure-storage-blob (azure) are imported lazily, so `pbm version` and friends stay fast and a
missing client library only fails the operations that need it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported when first used: only azure storage needs the package
    from azure.storage.blob import ContainerClient


class StorageError(Exception):
    """Any failure talking to the storage (the message is what the simulated PBM agent reports)."""


class NotExist(StorageError):
    """The object does not exist (PBM: storage.ErrNotExist, text `no such file`)."""

    def __init__(self, key: str) -> None:
        super().__init__("no such file")
        self.key = key


def _join(prefix: str, key: str) -> str:
    prefix = prefix.strip("/")
    key = key.lstrip("/")
    return f"{prefix}/{key}" if prefix else key


class Storage:
    type = ""

    def put(self, key: str, data: bytes) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def get(self, key: str) -> bytes:  # pragma: no cover - interface
        raise NotImplementedError

    def exists(self, key: str) -> bool:  # pragma: no cover - interface
        raise NotImplementedError

    def list(self, prefix: str = "") -> list[str]:  # pragma: no cover - interface
        """Keys under `prefix` (relative to the storage root), sorted."""
        raise NotImplementedError

    def stat(self, key: str) -> bool:
        """PBM's `FileStat`: an object store has only objects (a `dir/` prefix is not found); a filesystem also
        finds directories."""
        return self.exists(key)

    def delete(self, key: str) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def delete_tree(self, prefix: str) -> int:
        """Delete every key under `prefix/` (a PBM backup directory); returns how many were deleted."""
        keys = self.list(prefix.rstrip("/") + "/")
        for k in keys:
            self.delete(k)
        return len(keys)


class FilesystemStorage(Storage):
    type = "filesystem"

    def __init__(self, conf: Mapping[str, Any]) -> None:
        path = str(conf.get("path") or "")
        if not path:
            raise StorageError("path can't be empty")
        self.root = Path(path)

    def _p(self, key: str) -> Path:
        p = (self.root / key.lstrip("/")).resolve()
        root = self.root.resolve()
        if p != root and root not in p.parents:
            raise StorageError(f"key {key!r} escapes the storage path")
        return p

    def put(self, key: str, data: bytes) -> None:
        p = self._p(key)
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            tmp = p.with_name(p.name + ".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, p)
        except OSError as e:
            raise StorageError(f"write {key}: {e}") from e

    def get(self, key: str) -> bytes:
        try:
            return self._p(key).read_bytes()
        except FileNotFoundError:
            raise NotExist(key) from None
        except OSError as e:
            raise StorageError(f"read {key}: {e}") from e

    def exists(self, key: str) -> bool:
        return self._p(key).is_file()

    def stat(self, key: str) -> bool:
        return self._p(key).exists()

    def list(self, prefix: str = "") -> list[str]:
        root = self.root.resolve()
        if not root.is_dir():
            return []
        out = []
        for dirpath, _dirs, files in os.walk(root):
            for f in files:
                if f.endswith(".tmp"):
                    continue
                rel = (Path(dirpath) / f).relative_to(root).as_posix()
                if rel.startswith(prefix):
                    out.append(rel)
        return sorted(out)

    def delete(self, key: str) -> None:
        p = self._p(key)
        try:
            p.unlink()
        except FileNotFoundError:
            return
        except OSError as e:
            raise StorageError(f"delete {key}: {e}") from e
        # PBM's fs storage removes the emptied backup directories too
        parent = p.parent
        root = self.root.resolve()
        while parent != root and root in parent.parents:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent


class S3Storage(Storage):
    """`type: s3` (AWS SDK in PBM) and `type: minio` (MinIO client in PBM); both spoken here through boto3."""

    type = "s3"

    def __init__(self, conf: Mapping[str, Any], *, minio: bool = False) -> None:
        self.type = "minio" if minio else "s3"
        self.bucket = str(conf.get("bucket") or "").strip("/")
        self.prefix = str(conf.get("prefix") or "").strip("/")
        creds = conf.get("credentials") or {}
        if minio:
            endpoint = str(conf.get("endpoint") or "")
            if endpoint and "://" not in endpoint:
                endpoint = ("https://" if conf.get("secure") else "http://") + endpoint
            path_style = conf.get("forcePathStyle", True)
        else:
            endpoint = str(conf.get("endpointUrl") or "")
            if endpoint and "://" not in endpoint:
                endpoint = "https://" + endpoint
            path_style = conf.get("forcePathStyle", True)
        self.endpoint = endpoint or None
        self.region = str(conf.get("region") or "us-east-1")
        self.access_key = str(creds.get("access-key-id") or "")
        self.secret_key = str(creds.get("secret-access-key") or "")
        self.session_token = str(creds.get("session-token") or "") or None
        self.verify = not bool(conf.get("insecureSkipTLSVerify"))
        self.path_style = path_style is not False
        self._client = None

    @property
    def client(self):
        if self._client is None:
            try:
                import boto3
                from botocore.config import Config
            except ImportError as e:  # pragma: no cover - depends on the environment
                raise StorageError(f"pbm-sim needs boto3 for {self.type} storage: {e}") from e
            kwargs: dict[str, Any] = {
                "region_name": self.region,
                "endpoint_url": self.endpoint,
                "verify": self.verify,
                "config": Config(
                    s3={"addressing_style": "path" if self.path_style else "virtual"},
                    retries={"max_attempts": 2, "mode": "standard"},
                    connect_timeout=5,
                    read_timeout=20,
                ),
            }
            if self.access_key:
                kwargs.update(
                    aws_access_key_id=self.access_key,
                    aws_secret_access_key=self.secret_key,
                    aws_session_token=self.session_token,
                )
            self._client = boto3.client("s3", **kwargs)
        return self._client

    def _key(self, key: str) -> str:
        return _join(self.prefix, key)

    def _err(self, what: str, key: str, e: Exception) -> StorageError:
        return StorageError(f"{what} {self.bucket}/{self._key(key)}: {e}")

    def put(self, key: str, data: bytes) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        except StorageError:
            raise
        except Exception as e:  # botocore raises many types
            raise self._err("upload", key, e) from e

    def get(self, key: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except StorageError:
            raise
        except Exception as e:
            if _is_not_found(e):
                raise NotExist(key) from None
            raise self._err("download", key, e) from e

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except StorageError:
            raise
        except Exception as e:
            if _is_not_found(e):
                return False
            raise self._err("stat", key, e) from e

    def list(self, prefix: str = "") -> list[str]:
        base = self.prefix + "/" if self.prefix else ""
        out: list[str] = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base + prefix)
            for page in pages:
                for obj in page.get("Contents") or []:
                    out.append(obj["Key"][len(base) :])
        except StorageError:
            raise
        except Exception as e:
            raise self._err("list", prefix, e) from e
        return sorted(out)

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except StorageError:
            raise
        except Exception as e:
            raise self._err("delete", key, e) from e


def _is_not_found(e: Exception) -> bool:
    resp = getattr(e, "response", None)
    if isinstance(resp, dict):
        code = str((resp.get("Error") or {}).get("Code") or "")
        status = (resp.get("ResponseMetadata") or {}).get("HTTPStatusCode")
        return code in ("404", "NoSuchKey", "NotFound") or status == 404
    return False


class AzureStorage(Storage):
    """`type: azure` through azure-storage-blob (e.g. against Azurite: endpointUrl
    `http://127.0.0.1:10000/devstoreaccount1`, account `devstoreaccount1`)."""

    type = "azure"

    def __init__(self, conf: Mapping[str, Any]) -> None:
        self.account = str(conf.get("account") or "")
        self.container = str(conf.get("container") or "").strip("/")
        self.prefix = str(conf.get("prefix") or "").strip("/")
        # PBM_SIM_AZURE_ENDPOINT stands in for Azure's own endpoint (the demo: Azurite), as AWS_ENDPOINT_URL_S3 does
        # for S3 through boto3
        self.endpoint = (
            str(conf.get("endpointUrl") or "")
            or os.environ.get("PBM_SIM_AZURE_ENDPOINT", "")
            or f"https://{self.account}.blob.core.windows.net"
        )
        self.key = str((conf.get("credentials") or {}).get("key") or "")
        self._cc: ContainerClient | None = None

    @property
    def cc(self) -> ContainerClient:
        if self._cc is None:
            try:
                from azure.storage.blob import BlobServiceClient
            except ImportError as e:  # pragma: no cover - depends on the environment
                raise StorageError(f"pbm-sim needs azure-storage-blob for azure storage: {e}") from e
            cred = {"account_name": self.account, "account_key": self.key} if self.key else None
            svc = BlobServiceClient(account_url=self.endpoint, credential=cred)
            self._cc = svc.get_container_client(self.container)
        return self._cc

    def _key(self, key: str) -> str:
        return _join(self.prefix, key)

    def put(self, key: str, data: bytes) -> None:
        try:
            self.cc.upload_blob(self._key(key), data, overwrite=True)
        except StorageError:
            raise
        except Exception as e:
            raise StorageError(f"upload {self.container}/{self._key(key)}: {e}") from e

    def get(self, key: str) -> bytes:
        try:
            return self.cc.download_blob(self._key(key)).readall()
        except StorageError:
            raise
        except Exception as e:
            if type(e).__name__ == "ResourceNotFoundError":
                raise NotExist(key) from None
            raise StorageError(f"download {self.container}/{self._key(key)}: {e}") from e

    def exists(self, key: str) -> bool:
        try:
            return bool(self.cc.get_blob_client(self._key(key)).exists())
        except StorageError:
            raise
        except Exception as e:
            raise StorageError(f"stat {self.container}/{self._key(key)}: {e}") from e

    def list(self, prefix: str = "") -> list[str]:
        base = self.prefix + "/" if self.prefix else ""
        try:
            return sorted(b.name[len(base) :] for b in self.cc.list_blobs(name_starts_with=base + prefix))
        except StorageError:
            raise
        except Exception as e:
            raise StorageError(f"list {self.container}/{base}{prefix}: {e}") from e

    def delete(self, key: str) -> None:
        try:
            self.cc.delete_blob(self._key(key))
        except StorageError:
            raise
        except Exception as e:
            if type(e).__name__ == "ResourceNotFoundError":
                return
            raise StorageError(f"delete {self.container}/{self._key(key)}: {e}") from e


class BlackholeStorage(Storage):
    type = "blackhole"

    def put(self, key: str, data: bytes) -> None:
        return None

    def get(self, key: str) -> bytes:
        raise NotExist(key)

    def exists(self, key: str) -> bool:
        return False

    def list(self, prefix: str = "") -> list[str]:
        return []

    def delete(self, key: str) -> None:
        return None


def open_storage(storage_conf: Mapping[str, Any]) -> Storage:
    """A backend for a PBM `storage` section. Types the simulator cannot reach (gcs, oss, oci) raise StorageError,
    which makes the simulated backup fail the way an unreachable storage would."""
    typ = str(storage_conf.get("type") or "")
    sub = storage_conf.get(typ) or {}
    if typ == "s3":
        return S3Storage(sub)
    if typ == "minio":
        return S3Storage(sub, minio=True)
    if typ == "filesystem":
        return FilesystemStorage(sub)
    if typ == "azure":
        return AzureStorage(sub)
    if typ == "blackhole":
        return BlackholeStorage()
    raise StorageError(f"pbm-sim: storage type {typ!r} is not simulated (s3, minio, azure, filesystem, blackhole are)")


def _bucket_path(scheme: str, endpoint: str, c: Mapping[str, Any]) -> str:
    """`<scheme>://bucket[/prefix]`, or `<endpoint>/bucket[/prefix]` with the scheme added when the endpoint has none."""
    bucket = str(c.get("bucket") or "")
    if not endpoint:
        path = f"{scheme}://{bucket}"
    else:
        path = (endpoint if "://" in endpoint else f"{scheme}://{endpoint}") + "/" + bucket
    return path + ("/" + str(c["prefix"]) if c.get("prefix") else "")


def storage_path(storage_conf: Mapping[str, Any]) -> str:
    """PBM's `StorageConf.Path()` (what `pbm backup -o json` prints as `storagePath`). PBM:pbm/config/config.go."""
    typ = str(storage_conf.get("type") or "")
    c = storage_conf.get(typ) or {}
    if typ in ("s3", "minio"):
        return _bucket_path(typ, str(c.get("endpointUrl" if typ == "s3" else "endpoint") or ""), c)
    if typ == "azure":
        ep = str(c.get("endpointUrl") or "") or f"https://{c.get('account') or ''}.blob.core.windows.net"
        path = ep + "/" + str(c.get("container") or "")
        if c.get("prefix"):
            path += "/" + str(c["prefix"])
        return path
    if typ == "gcs":
        path = "gs://" + str(c.get("bucket") or "")
        return path + ("/" + str(c["prefix"]) if c.get("prefix") else "")
    if typ == "oss":
        path = str(c.get("endpointUrl") or "")
        if not path:
            path = "oss://" + str(c.get("bucket") or "")
        else:
            if "://" not in path:
                path = "oss://" + path
            path += "/" + str(c.get("bucket") or "")
        return path + ("/" + str(c["prefix"]) if c.get("prefix") else "")
    if typ == "filesystem":
        return str(c.get("path") or "")
    return ""


def same_storage(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """PBM's `IsSameStorage`: the parts that name the storage instance (not credentials or tuning)."""
    if not a or not b:
        return a == b
    if a.get("type") != b.get("type"):
        return False
    typ = str(a.get("type"))
    ca, cb = a.get(typ) or {}, b.get(typ) or {}
    keys = {
        "s3": ("region", "endpointUrl", "bucket", "prefix"),
        "minio": ("region", "endpoint", "bucket", "prefix"),
        "azure": ("account", "container", "prefix", "endpointUrl"),
        "gcs": ("bucket", "prefix"),
        "oss": ("region", "endpointUrl", "bucket", "prefix"),
        "filesystem": ("path",),
    }.get(typ, ())
    return all((ca.get(k) or "") == (cb.get(k) or "") for k in keys)
