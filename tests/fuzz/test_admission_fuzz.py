"""Generated AdmissionReviews against the admission app: every answer is a valid AdmissionReview echoing the uid, or a
clean JSON 4xx; never a 5xx. 10,000 examples by default; PSMDB_FUZZ_EXAMPLES=100000 on demand."""

from __future__ import annotations

import asyncio
import json
import os

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from webhook.admission.server import AdmissionApp, Settings
from webhook.kube import LiveLookup
from webhook.policy.failures import STRICT_ENV

from ..unit.test_admission import CLUSTER, POD, DictReader, namespace
from ..unit.test_robustness import VALUES

EXAMPLES = int(os.environ.get("PSMDB_FUZZ_EXAMPLES", "10000"))
KINDS = [
    "PerconaServerMongoDB",
    "PerconaServerMongoDBBackup",
    "PerconaServerMongoDBRestore",
    "PerconaServerMongoDBBackupSchedule",
    "Pod",
    "Secret",
    "",
]
SCHEDULE_SPEC = {"clusterName": "my-cluster", "schedule": "0 1 * * *", "retention": {"maxAge": "7d"}}


def objects() -> st.SearchStrategy:
    spec = st.one_of(
        VALUES,
        st.just(CLUSTER["spec"]),
        st.just({"clusterName": "my-cluster", "storageName": "s3-us-west"}),
        st.just(SCHEDULE_SPEC),
    )
    labelled = st.builds(
        lambda extra: {**POD, "metadata": {**POD["metadata"], **extra}},
        st.dictionaries(st.sampled_from(["labels", "annotations", "name"]), VALUES, max_size=2),
    )
    plain = st.builds(
        lambda a, k, s, m: {"apiVersion": a, "kind": k, "metadata": m, "spec": s},
        st.sampled_from(["psmdb.percona.com/v1", "psmdb-backup-webhook.io/v1alpha1"]),
        st.sampled_from(KINDS),
        spec,
        st.one_of(VALUES, st.just({"name": "x", "namespace": "psmdb"})),
    )
    return st.one_of(plain, labelled, VALUES)


reviews = st.builds(
    lambda api, kind_, uid, group, kind, op, ns, obj, old, dry: {
        "apiVersion": api,
        "kind": kind_,
        "request": {
            "uid": uid,
            "kind": {"group": group, "version": "v1", "kind": kind},
            "operation": op,
            "namespace": ns,
            "object": obj,
            "oldObject": old,
            "dryRun": dry,
        },
    },
    st.sampled_from(["admission.k8s.io/v1"] * 9 + ["admission.k8s.io/v1beta1"]),
    st.sampled_from(["AdmissionReview"] * 9 + ["Other"]),
    st.one_of(st.uuids().map(str), st.sampled_from(["", None, 5])),
    st.sampled_from(["psmdb.percona.com", "psmdb-backup-webhook.io", "", "apps"]),
    st.sampled_from(KINDS),
    st.sampled_from(["CREATE", "UPDATE", "DELETE", "CONNECT", 7]),
    st.sampled_from(["psmdb", "", "other"]),
    objects(),
    st.one_of(st.none(), objects()),
    st.one_of(st.booleans(), st.none()),
)
bodies = st.one_of(
    reviews.map(lambda r: json.dumps(r, default=str).encode()),
    VALUES.map(lambda v: json.dumps(v, default=str).encode()),
    st.binary(max_size=64),
)


@pytest.fixture(scope="module")
def client():
    loop = asyncio.new_event_loop()
    reader = DictReader([CLUSTER, namespace("psmdb")])
    test_client = TestClient(
        TestServer(AdmissionApp(Settings(), LiveLookup(reader)).build(), host="127.0.0.1"), loop=loop
    )
    loop.run_until_complete(test_client.start_server())
    yield loop, test_client
    loop.run_until_complete(test_client.close())
    loop.close()


# CI runs the same 10,000 examples every time (derandomize); larger on-demand runs explore new ones.
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=EXAMPLES <= 10000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
@given(body=bodies, path=st.sampled_from(["/validate", "/mutate"]))
def test_every_answer_is_an_admission_review_or_a_clean_4xx(client, body: bytes, path: str) -> None:
    loop, test_client = client

    async def call():
        resp = await test_client.post(path, data=body, headers={"Content-Type": "application/json"})
        return resp.status, await resp.read()

    status, raw = loop.run_until_complete(call())
    assert status < 500, raw[:500]
    answer = json.loads(raw)
    if status == 200:
        sent = json.loads(body)
        assert answer["apiVersion"] == "admission.k8s.io/v1" and answer["kind"] == "AdmissionReview"
        assert answer["response"]["uid"] == sent["request"]["uid"]
        assert isinstance(answer["response"]["allowed"], bool)
    else:
        assert 400 <= status < 500 and isinstance(answer.get("error"), str)


def test_the_fuzz_run_is_strict() -> None:
    """A rule that raises on a generated object must fail the run above, not turn into an info finding."""
    assert os.environ.get(STRICT_ENV) == "1"
