"""The dev server's S3 annotations, proven against boto3 (botocore's own serializer and parser).

moto has no annotations; :mod:`metafs.devserver` implements the four
operations from botocore's service model.  If the fake spoke anything but
the wire format botocore builds and parses, these round trips would fail:
request URIs and query names (``?annotation``, ``annotationName``,
``continuation-token``, ``max-annotation-results``), the aws-chunked PUT
body, the wrapped ``Annotations`` list, paging by ``NextContinuationToken``,
the CRC32 botocore validates on GET, and the error codes.
"""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError


@pytest.fixture
def obj(boto, bucket) -> tuple[str, str]:
    boto.put_object(Bucket=bucket, Key="dir/photo.jpg", Body=b"jpeg")
    return bucket, "dir/photo.jpg"


def test_put_get_delete_round_trip_through_boto3(boto, obj, s3):
    b, k = obj
    put = boto.put_object_annotation(Bucket=b, Key=k, AnnotationName="ml.labels",
                                     AnnotationPayload=b'{"labels":["cat"]}')
    assert (put["Key"], put["AnnotationName"]) == (k, "ml.labels")
    assert put["ETag"].startswith('"') and len(put["ETag"]) == 34
    got = boto.get_object_annotation(Bucket=b, Key=k, AnnotationName="ml.labels")
    assert got["AnnotationPayload"].read() == b'{"labels":["cat"]}'  # botocore checked its CRC32
    assert got["ETag"] == put["ETag"] and got["ContentLength"] == 18
    assert got["LastModified"].year >= 2024
    assert s3.log("ANNOTATION")[0].query == {"annotation": "", "annotationName": "ml.labels"}
    text = "größe 日本 ✓"
    boto.put_object_annotation(Bucket=b, Key=k, AnnotationName="note.ü", AnnotationPayload=text.encode())
    assert boto.get_object_annotation(Bucket=b, Key=k, AnnotationName="note.ü")[
        "AnnotationPayload"].read().decode() == text
    boto.delete_object_annotation(Bucket=b, Key=k, AnnotationName="ml.labels")
    with pytest.raises(ClientError) as e:
        boto.get_object_annotation(Bucket=b, Key=k, AnnotationName="ml.labels")
    assert e.value.response["Error"]["Code"] == "NoSuchAnnotation"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_list_pages_through_boto3s_paginator(boto, obj, s3):
    b, k = obj
    names = [f"a{i:02d}" for i in range(7)]
    for i, n in enumerate(names):
        boto.put_object_annotation(Bucket=b, Key=k, AnnotationName=n, AnnotationPayload=b"v" * (i + 1))
    s3.reset()
    pages = list(boto.get_paginator("list_object_annotations").paginate(
        Bucket=b, Key=k, PaginationConfig={"PageSize": 3}))
    assert [[a["AnnotationName"] for a in p["Annotations"]] for p in pages] == [
        names[0:3], names[3:6], names[6:7]]
    assert [p["AnnotationCount"] for p in pages] == [3, 3, 1]
    assert "NextContinuationToken" not in pages[-1]
    entry = pages[0]["Annotations"][1]
    assert entry["Size"] == 2 and entry["ETag"].startswith('"') and entry["ChecksumAlgorithm"] == ["CRC32"]
    assert s3.counts()["ANNOTATIONS"] == 3
    assert all("annotationName" not in r.query for r in s3.log("ANNOTATIONS"))
    assert s3.log("ANNOTATIONS")[1].query["max-annotation-results"] == "3"
    assert "continuation-token" in s3.log("ANNOTATIONS")[1].query
    prefixed = boto.list_object_annotations(Bucket=b, Key=k, AnnotationPrefix="a0")
    assert [a["AnnotationName"] for a in prefixed["Annotations"]] == names
    assert prefixed["AnnotationPrefix"] == "a0"


@pytest.mark.parametrize(("name", "payload", "code"), [
    ("n" * 513, b"x", "AnnotationNameTooLong"),
    ("aws.reserved", b"x", "InvalidAnnotationName"),
    ("S3thing", b"x", "InvalidAnnotationName"),
    ("has space", b"x", "InvalidAnnotationName"),
    ("binary", b"\xff\xfe", "UnsupportedMediaType"),
])
def test_the_services_rules_are_enforced(boto, obj, name, payload, code):
    b, k = obj
    with pytest.raises(ClientError) as e:
        boto.put_object_annotation(Bucket=b, Key=k, AnnotationName=name, AnnotationPayload=payload)
    assert e.value.response["Error"]["Code"] == code


def test_limits_at_their_edges(boto, obj):
    b, k = obj
    boto.put_object_annotation(Bucket=b, Key=k, AnnotationName="n" * 512, AnnotationPayload=b"x")
    mib = b"m" * (1024 * 1024)
    boto.put_object_annotation(Bucket=b, Key=k, AnnotationName="mib", AnnotationPayload=mib)
    got = boto.get_object_annotation(Bucket=b, Key=k, AnnotationName="mib")
    assert got["AnnotationPayload"].read() == mib
    with pytest.raises(ClientError) as e:
        boto.put_object_annotation(Bucket=b, Key=k, AnnotationName="over", AnnotationPayload=mib + b"x")
    assert e.value.response["Error"]["Code"] == "InvalidRequest"


def test_a_missing_object_has_no_annotations(boto, bucket):
    with pytest.raises(ClientError) as e:
        boto.list_object_annotations(Bucket=bucket, Key="nope")
    assert e.value.response["Error"]["Code"] == "NoSuchKey"
