"""The S3 subset that tansu's object store client uses, served from a SQLite file (worker/tools/_bucket.py)."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from worker.exceptions import BrokerError
from worker.tools._bucket import ObjectBucket


@pytest.fixture
def bucket(tmp_path: Path) -> Iterator[ObjectBucket]:
    b = ObjectBucket(tmp_path)
    yield b
    b.stop()


def _call(
    bucket: ObjectBucket, method: str, path: str, body: bytes | None = None, **headers: str
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(bucket.endpoint + path, data=body, method=method)  # noqa: S310  # http://127.0.0.1
    for name, value in headers.items():
        request.add_header(name.replace("_", "-"), value)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310  # the same
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def _keys(listing: bytes, tag: str) -> list[str]:
    return re.findall(rf"<{tag}><(?:Key|Prefix)>([^<]*)</", listing.decode())


def test_conditional_puts_are_what_tansu_counts_its_offsets_with(bucket: ObjectBucket) -> None:
    status, headers, _ = _call(bucket, "PUT", "/tansu/a/watermark.json", b"1", If_None_Match="*")
    assert status == 200
    first = headers["ETag"]
    assert _call(bucket, "PUT", "/tansu/a/watermark.json", b"2", If_None_Match="*")[0] == 412  # exists already
    status, headers, _ = _call(bucket, "PUT", "/tansu/a/watermark.json", b"2", If_Match=first)
    assert status == 200
    assert _call(bucket, "PUT", "/tansu/a/watermark.json", b"3", If_Match=first)[0] == 412  # someone else's was newer
    status, headers, body = _call(bucket, "GET", "/tansu/a/watermark.json")
    assert (status, body) == (200, b"2")
    assert "Last-Modified" in headers
    assert _call(bucket, "GET", "/tansu/nothing")[0] == 404


def test_listing_pages_and_groups_by_the_delimiter(bucket: ObjectBucket) -> None:
    for key in ["t/p0/r/1", "t/p0/r/2", "t/p1/r/1", "t/meta.json", "u/other"]:
        assert _call(bucket, "PUT", f"/tansu/{key}", b"x")[0] == 200
    _, _, listing = _call(bucket, "GET", "/tansu?list-type=2&prefix=t/")
    assert _keys(listing, "Contents") == ["t/meta.json", "t/p0/r/1", "t/p0/r/2", "t/p1/r/1"]
    _, _, listing = _call(bucket, "GET", "/tansu?list-type=2&prefix=t/&delimiter=/")
    assert _keys(listing, "Contents") == ["t/meta.json"]
    assert _keys(listing, "CommonPrefixes") == ["t/p0/", "t/p1/"]
    _, _, page = _call(bucket, "GET", "/tansu?list-type=2&prefix=t/&max-keys=3")
    assert _keys(page, "Contents") == ["t/meta.json", "t/p0/r/1", "t/p0/r/2"]
    token = re.findall(r"<NextContinuationToken>([^<]*)<", page.decode())
    _, _, page = _call(bucket, "GET", f"/tansu?list-type=2&prefix=t/&max-keys=3&continuation-token={token[0]}")
    assert _keys(page, "Contents") == ["t/p1/r/1"]
    assert b"<IsTruncated>false" in page


def test_deleted_objects_are_gone_and_kept_ones_outlive_the_server(tmp_path: Path) -> None:
    bucket = ObjectBucket(tmp_path)
    for key in ["a", "b", "c"]:
        _call(bucket, "PUT", f"/tansu/{key}", key.encode())
    _call(bucket, "DELETE", "/tansu/a")
    delete = b"<Delete><Object><Key>b</Key></Object></Delete>"
    status, _, body = _call(bucket, "POST", "/tansu?delete", delete)
    assert status == 200
    assert b"<Deleted><Key>b</Key></Deleted>" in body
    bucket.stop()
    again = ObjectBucket(tmp_path)
    try:
        _, _, listing = _call(again, "GET", "/tansu?list-type=2")
        assert _keys(listing, "Contents") == ["c"]
        assert _call(again, "GET", "/tansu/c")[2] == b"c"
    finally:
        again.stop()


def test_one_broker_per_data_directory(bucket: ObjectBucket, tmp_path: Path) -> None:
    with pytest.raises(BrokerError, match="another embedded broker is using the data directory"):
        ObjectBucket(tmp_path)
