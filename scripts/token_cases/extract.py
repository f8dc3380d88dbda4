"""Reading recorded HTTP interactions: (request body, API-reported prompt token count) pairs.

The cassette formats of the projects in ``projects.toml``: vcrpy / pytest-recording YAML
(``interactions``), Ruby and R VCR YAML (``http_interactions``, ``!binary``), go-vcr v1 and
v2 YAML (v2: status ``"200 OK"`` next to ``code: 200``, the request's Content-Length as a
``content_length`` field), VCR JSON, DataDog test-agent cassettes, Polly.js HAR, nock JSON,
Azure SDK test-proxy session records, Go ``httprr`` traces, llama-stack recordings and Batch
API flows (input file upload paired with the output file by ``custom_id``). Response bodies
are gunzipped / brotli-decoded / de-chunked as needed; SSE streams are parsed. Reads data
only: nothing from a mirrored repository is ever run.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import json
import re
import subprocess
import threading
import zlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import yaml  # type: ignore[import-untyped]  # PyYAML: comes with the dev extras (pre-commit)

# Brotli: replies some cassettes store encoded (collect.py refuses to run without it).
try:
    import brotli  # type: ignore[import-untyped, import-not-found, unused-ignore]
except ImportError:  # pragma: no cover
    brotli = None
HAS_BROTLI = brotli is not None
_decode_brotli = HAS_BROTLI


def decode_brotli(enabled: bool) -> None:
    """Read brotli-encoded bodies (the default) or leave them encoded, as one round did."""
    global _decode_brotli
    _decode_brotli = enabled and HAS_BROTLI


# (count, field, cached tokens, response model, response id, usage block)
Usage = tuple[int, str, Any, Any, Any, dict[str, Any]]
# (kind, features, caveats, reason to leave it out, images)
Analysis = tuple[str | None, list[str], list[str], str | None, list[dict[str, Any]]]


class Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """A safe loader that reads Ruby and Python tags in cassettes as plain data."""


def _binary(loader: Any, node: Any) -> bytes:
    return base64.b64decode(loader.construct_scalar(node))


def _generic(loader: Any, tag_suffix: str, node: Any) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        seq = loader.construct_sequence(node, deep=True)
        # python/object/apply:multidict.istr ['Accept'] -> 'Accept'
        if len(seq) == 1 and isinstance(seq[0], str):
            return seq[0]
        return seq
    return loader.construct_mapping(node, deep=True)


Loader.add_constructor("!binary", _binary)
Loader.add_multi_constructor("tag:yaml.org,2002:python/", _generic)
Loader.add_multi_constructor("!", _generic)


# ---------------------------------------------------------------- git helpers
def git(repo: str, *args: str) -> bytes:
    """Output of a git command in the bare snapshot ``repo``."""
    return subprocess.run(["git", "--git-dir", repo, *args], capture_output=True, check=True).stdout


def history_blobs(repo: str, path_regex: str, rev: str = "HEAD") -> list[tuple[str, str, str, str]]:
    """Yield (commit, date, path, blob) for every version of matching files in rev's history,
    oldest first.  Uses `git log --raw` so renames/edits all show up."""
    out = git(repo, "log", rev, "--format=C %H %cs", "--raw", "--no-abbrev", "--no-renames", "-c")
    rx = re.compile(path_regex)
    rows: list[tuple[str, str, str, str]] = []
    commit = date = ""
    for line in out.decode("utf-8", "replace").splitlines():
        if line.startswith("C "):
            _, commit, date = line.split(" ", 2)
        elif line.startswith(":"):
            meta, _, path = line.partition("\t")
            parts = meta.split()
            blob = parts[-2] if len(parts) >= 5 else None
            status = parts[-1]
            if status.startswith("D") or not blob or set(blob) == {"0"}:
                continue
            if "\t" in path:  # combined diff lines may carry several paths
                path = path.split("\t")[-1]
            if rx.search(path):
                rows.append((commit, date, path, blob))
    rows.reverse()
    return rows


def cat_blobs(repo: str, blobs: list[str]) -> dict[str, bytes]:
    """Return {blob: bytes}."""
    blobs = list(dict.fromkeys(blobs))
    res: dict[str, bytes] = {}
    if not blobs:
        return res
    p = subprocess.Popen(
        ["git", "--git-dir", repo, "cat-file", "--batch"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert p.stdin is not None and p.stdout is not None
    stdin, f = p.stdin, p.stdout

    def feed() -> None:
        for b in blobs:
            stdin.write((b + "\n").encode())
        stdin.close()

    t = threading.Thread(target=feed)
    t.start()
    for b in blobs:
        header = f.readline().decode()
        parts = header.split()
        if len(parts) < 3 or parts[1] == "missing":
            continue
        size = int(parts[2])
        data = f.read(size)
        f.read(1)
        res[b] = data
    t.join()
    p.wait()
    return res


# ---------------------------------------------------------------- decoding
def _to_bytes(x: Any) -> bytes | None:
    if x is None:
        return None
    if isinstance(x, (bytes, bytearray)):
        return bytes(x)
    if isinstance(x, str):
        return x.encode("utf-8", "surrogatepass")
    return None


def decompress(b: bytes, encoding: str | None = None) -> bytes:
    if b is None:
        return None
    enc = (encoding or "").lower()
    try:
        if b[:2] == b"\x1f\x8b":
            return gzip.decompress(b)
    except Exception:
        pass
    if "br" in enc and _decode_brotli:
        try:
            return brotli.decompress(b)
        except Exception:
            pass
    if "deflate" in enc:
        for w in (zlib.MAX_WBITS, -zlib.MAX_WBITS):
            try:
                return zlib.decompress(b, w)
            except Exception:
                pass
    if _decode_brotli and b[:1] not in (b"{", b"[", b"d", b"e", b":", b" ", b"\n"):
        try:
            return brotli.decompress(b)
        except Exception:
            pass
    return b


def header_get(headers: Any, name: str) -> Any:
    if not headers:
        return None
    if isinstance(headers, dict):
        for k, v in headers.items():
            if k.lower() == name.lower():
                if isinstance(v, list):
                    return v[0] if v else None
                return v
    if isinstance(headers, list):  # list of pairs
        for kv in headers:
            if (
                isinstance(kv, (list, tuple))
                and len(kv) == 2
                and str(kv[0]).lower() == name.lower()
            ):
                return kv[1]
    return None


def parse_json_or_sse(raw: Any) -> tuple[str | None, Any]:
    """raw: bytes/str/dict.  Returns ('json', obj) or ('sse', [events]) or (None, None)."""
    if raw is None:
        return None, None
    if isinstance(raw, (dict, list)):
        return "json", raw
    b = _to_bytes(raw)
    if b is None:
        return None, None
    try:
        s = b.decode("utf-8")
    except UnicodeDecodeError:
        return None, None
    st = s.strip()
    if not st:
        return None, None
    if st[0] in "{[":
        try:
            return "json", json.loads(st)
        except Exception:
            pass
    if "data:" in s:
        events = []
        for line in s.splitlines():
            line = line.strip()
            if line.startswith("data:"):
                d = line[5:].strip()
                if d == "[DONE]" or not d:
                    continue
                with contextlib.suppress(Exception):
                    events.append(json.loads(d))
        if events:
            return "sse", events
    return None, None


def load_request_json(body: Any) -> tuple[Any, str]:
    """Return (obj, note).  body may be str/bytes/dict."""
    if body is None:
        return None, "no_body"
    if isinstance(body, dict):
        return body, "dict_in_cassette"
    b = _to_bytes(body)
    if b is None:
        return None, "unknown_body_type"
    b = decompress(b)
    try:
        s = b.decode("utf-8")
    except UnicodeDecodeError:
        return None, "undecodable"
    try:
        return json.loads(s), "raw"
    except Exception:
        # some serializers store base64 text
        try:
            d = base64.b64decode(s, validate=True)
            d = decompress(d)
            return json.loads(d.decode("utf-8")), "base64"
        except Exception:
            return None, "not_json"


# ---------------------------------------------------------------- cassette parsing
def parse_cassette(data: bytes, path: str) -> list[dict[str, Any]]:
    """One dict per interaction: uri, method, req_body, req_headers, resp_raw, status, ..."""
    b = data
    if path.endswith(".gz") or b[:2] == b"\x1f\x8b":
        try:
            b = gzip.decompress(b)
        except Exception:
            return []
    try:
        text = b.decode("utf-8")
    except UnicodeDecodeError:
        return []
    if text.startswith("httprr trace v1"):
        return parse_httprr(b)
    doc = None
    st = text.lstrip()
    if st.startswith("{") or st.startswith("["):
        try:
            doc = json.loads(text)
        except Exception:
            doc = None
    if doc is None and (path.endswith((".yaml", ".yml")) or "interactions:" in text[:300]):
        try:
            doc = yaml.load(text, Loader=Loader)
        except Exception:
            return []
    if doc is None and path.endswith(".jsonl"):
        doc = []
        for line in text.splitlines():
            with contextlib.suppress(Exception):
                doc.append(json.loads(line))
    if doc is None:
        return []
    items = []
    if (
        isinstance(doc, dict)
        and isinstance(doc.get("log"), dict)
        and isinstance(doc["log"].get("entries"), list)
    ):
        return parse_har(doc)
    if isinstance(doc, dict) and isinstance(doc.get("Entries"), list):
        return parse_testproxy(doc)
    if (
        isinstance(doc, list)
        and doc
        and isinstance(doc[0], dict)
        and "scope" in doc[0]
        and "path" in doc[0]
    ):
        return parse_nock(doc)
    if isinstance(doc, dict) and isinstance(doc.get("interactions"), list):
        items = doc["interactions"]
    elif isinstance(doc, dict) and isinstance(doc.get("http_interactions"), list):
        items = doc["http_interactions"]
    elif isinstance(doc, dict) and "request" in doc and "response" in doc:
        items = [doc]
    elif isinstance(doc, list):
        items = [x for x in doc if isinstance(x, dict) and "request" in x and "response" in x]
    res = []
    for it in items:
        if not isinstance(it, dict):
            continue
        rq, rs = it.get("request") or {}, it.get("response") or {}
        if not isinstance(rq, dict) or not isinstance(rs, dict):
            continue
        uri = rq.get("uri") or rq.get("url") or ""
        if not uri and rq.get("host"):
            uri = "https://" + str(rq.get("host")) + str(rq.get("path", ""))
        body = rq.get("body")
        note = None
        if isinstance(body, dict) and ("string" in body or "base64_string" in body):
            if "base64_string" in body:
                body = base64.b64decode(body["base64_string"])
            else:
                body = body["string"]
        if body is None and "parsed_body" in rq:
            body = rq["parsed_body"]
            note = "parsed_body"
        if body is None and "content" in rq:
            body = rq["content"]
        rbody = rs.get("body")
        rheaders = rs.get("headers")
        rraw = None
        if isinstance(rbody, dict):
            if "string" in rbody:
                rraw = rbody["string"]
            elif "base64_string" in rbody:
                rraw = base64.b64decode(rbody["base64_string"])
            elif "__data__" in rbody:
                rraw = rbody["__data__"]
            else:
                rraw = rbody
        elif rbody is not None:
            rraw = rbody
        if rraw is None and "parsed_body" in rs:
            rraw = rs["parsed_body"]
        if rraw is None and "content" in rs:
            rraw = rs["content"]
        if rraw is None and "text" in rs:
            rraw = rs["text"]
        if isinstance(rraw, list) and rraw and all(isinstance(x, (str, bytes)) for x in rraw):
            # body stored as list of chunks
            rraw = b"".join(_to_bytes(x) or b"" for x in rraw)
        if isinstance(rraw, list) and rraw and all(isinstance(x, dict) for x in rraw):
            rraw = rraw  # list of parsed SSE events
        status = rs.get("status")
        if isinstance(status, dict):
            status = status.get("code")
        if status is None:
            status = rs.get("status_code")
        if isinstance(status, str) and isinstance(rs.get("code"), int):
            status = rs["code"]  # go-vcr v2: status "200 OK", code 200
        req_headers = rq.get("headers")
        if (
            isinstance(rq.get("content_length"), int)
            and rq["content_length"] > 0
            and not header_get(req_headers, "content-length")
        ):
            # go-vcr v2 records the request Content-Length as a field, not a header
            req_headers = dict(req_headers or {}, **{"Content-Length": [str(rq["content_length"])]})
        if isinstance(rraw, (bytes, str)):
            enc = header_get(rheaders, "content-encoding")
            rraw = decompress(_to_bytes(rraw) or b"", enc)
        res.append(
            dict(
                uri=str(uri),
                method=str(rq.get("method", "POST")).upper(),
                req_body=body,
                req_note=note,
                resp_raw=rraw,
                resp_headers=rheaders,
                status=status,
                req_headers=req_headers,
            )
        )
    return res


# ---------------------------------------------------------------- endpoint / usage
def classify_uri(uri: str) -> tuple[str, str, str | None] | None:
    """Return (service, endpoint, azure_deployment) or None."""
    try:
        u = urlparse(uri)
    except Exception:
        return None
    host = (u.hostname or "").lower()
    path = u.path.rstrip("/")
    if host == "api.openai.com":
        service = "openai"
    elif host.endswith(".openai.azure.com"):
        service = "azure"
    elif host.endswith(".cognitiveservices.azure.com") and "/openai" in path:
        service = "azure_cognitiveservices"
    else:
        return None
    dep = None
    m = re.search(r"/openai/deployments/([^/]+)/", path)
    if m:
        dep = m.group(1)
    if path.endswith("/responses/input_tokens"):
        ep = "/v1/responses/input_tokens"
    elif path.endswith("/responses"):
        ep = "/v1/responses"
    elif path.endswith("/chat/completions"):
        ep = "/v1/chat/completions"
    elif path.endswith("/embeddings"):
        ep = "/v1/embeddings"
    else:
        return None
    return service, ep, dep


def get_usage(kind: str | None, obj: Any, endpoint: str) -> Usage | None:
    """Return (count, field, cached, response_model, response_id, usage_dict) or None."""
    if kind == "json":
        if isinstance(obj, list):  # list of events stored parsed
            return get_usage("sse", obj, endpoint)
        if not isinstance(obj, dict):
            return None
        if endpoint == "/v1/responses/input_tokens":
            if isinstance(obj.get("input_tokens"), int):
                return obj["input_tokens"], "input_tokens", None, None, None, obj
            return None
        u = obj.get("usage")
        if not isinstance(u, dict):
            return None
        if endpoint == "/v1/responses":
            n = u.get("input_tokens")
            fld = "input_tokens"
            cached = (u.get("input_tokens_details") or {}).get("cached_tokens")
        else:
            n = u.get("prompt_tokens")
            fld = "prompt_tokens"
            cached = (u.get("prompt_tokens_details") or {}).get("cached_tokens")
            if (
                n is None
                and endpoint == "/v1/chat/completions"
                and isinstance(u.get("input_tokens"), int)
            ):
                return None
        if not isinstance(n, int):
            return None
        return n, fld, cached, obj.get("model"), obj.get("id"), u
    if kind == "sse":
        model = rid = None
        for ev in obj:
            if not isinstance(ev, dict):
                continue
            if endpoint == "/v1/responses":
                r = ev.get("response")
                if isinstance(r, dict):
                    model = r.get("model") or model
                    rid = r.get("id") or rid
                    if ev.get("type") in (
                        "response.completed",
                        "response.incomplete",
                    ) and isinstance(r.get("usage"), dict):
                        u = r["usage"]
                        if isinstance(u.get("input_tokens"), int):
                            return (
                                u["input_tokens"],
                                "input_tokens",
                                (u.get("input_tokens_details") or {}).get("cached_tokens"),
                                model,
                                rid,
                                u,
                            )
            else:
                model = ev.get("model") or model
                rid = ev.get("id") or rid
                u = ev.get("usage")
                if isinstance(u, dict) and isinstance(u.get("prompt_tokens"), int):
                    last = (
                        u["prompt_tokens"],
                        "prompt_tokens",
                        (u.get("prompt_tokens_details") or {}).get("cached_tokens"),
                        model,
                        rid,
                        u,
                    )
        if endpoint != "/v1/responses":
            try:
                return last
            except NameError:
                return None
        return None
    return None


HOSTED_TOOL_TYPES = {
    "web_search",
    "web_search_preview",
    "web_search_preview_2025_03_11",
    "file_search",
    "code_interpreter",
    "mcp",
    "image_generation",
    "computer_use_preview",
    "computer_use",
    "local_shell",
    "shell",
    "apply_patch",
    "tool_search",
    "web_search_2025_08_26",
}


def walk(o: Any) -> Iterator[dict[str, Any]]:
    if isinstance(o, dict):
        yield o
        for v in o.values():
            yield from walk(v)
    elif isinstance(o, list):
        for v in o:
            yield from walk(v)


def analyse_body(endpoint: str, body: Any) -> Analysis:
    """Return (kind, features, caveats, exclude_reason, images)."""
    feats: list[str] = []
    cav: list[str] = []
    images: list[dict[str, Any]] = []
    if not isinstance(body, dict):
        return None, feats, cav, "body_not_object", images
    model = str(body.get("model") or "")
    ml = model.lower()
    for bad in (
        "audio",
        "realtime",
        "search",
        "tts",
        "transcribe",
        "whisper",
        "dall-e",
        "gpt-image",
    ):
        if bad in ml:
            return None, feats, cav, "excluded_model:" + bad, images
    if endpoint == "/v1/embeddings":
        body.get("input")
        return "embedding", feats, cav, None, images
    if body.get("previous_response_id") or body.get("conversation"):
        cav.append("stored_items")
    if (
        endpoint.startswith("/v1/responses")
        and body.get("prompt")
        and isinstance(body.get("prompt"), dict)
    ):
        return None, feats, cav, "stored_prompt", images
    if body.get("audio") or "audio" in (body.get("modalities") or []):
        return None, feats, cav, "audio_output", images
    msgs = body.get("messages") if endpoint == "/v1/chat/completions" else body.get("input")
    if endpoint == "/v1/chat/completions" and not isinstance(msgs, list):
        return None, feats, cav, "no_messages", images
    has_image = False
    has_tool_traffic = False
    for d in walk(msgs):
        t = d.get("type")
        if t in ("input_audio",) or "input_audio" in d:
            return None, feats, cav, "audio_input", images
        if t in ("file", "input_file"):
            return None, feats, cav, "file_input", images
        if t == "item_reference" and "stored_items" not in cav:
            cav.append("stored_items")
        if t in ("image_url", "input_image", "image_file"):
            has_image = True
            url = d.get("image_url")
            detail = d.get("detail")
            if isinstance(url, dict):
                detail = url.get("detail", detail)
                url = url.get("url")
            if t == "image_file" or d.get("file_id"):
                return None, feats, cav, "image_file_id", images
            images.append({"url": url, "detail": detail})
        if t in (
            "function_call",
            "function_call_output",
            "custom_tool_call",
            "custom_tool_call_output",
            "tool_call",
        ):
            has_tool_traffic = True
        if t in ("reasoning",):
            if d.get("encrypted_content") and "encrypted_reasoning" not in cav:
                cav.append("encrypted_reasoning")
            if "reasoning_items_in_input" not in feats:
                feats.append("reasoning_items_in_input")
        if (
            t
            in (
                "web_search_call",
                "file_search_call",
                "code_interpreter_call",
                "image_generation_call",
                "mcp_call",
                "mcp_list_tools",
                "computer_call",
                "computer_call_output",
                "local_shell_call",
                "shell_call",
            )
            and "hosted_tool" not in cav
        ):
            cav.append("hosted_tool")
        if d.get("tool_calls") or d.get("function_call") or d.get("role") in ("tool", "function"):
            has_tool_traffic = True
        if d.get("role") in ("assistant",) and "multi_turn" not in feats:
            feats.append("multi_turn")
        named = "name" in d and d.get("role") in ("system", "user", "assistant", "developer")
        if named and "name_field" not in feats:
            feats.append("name_field")
    if endpoint == "/v1/chat/completions":
        known = {
            "role",
            "content",
            "name",
            "tool_calls",
            "tool_call_id",
            "function_call",
            "refusal",
            "audio",
            "annotations",
            "reasoning_content",
        }
        for m in msgs or ():
            unknown = isinstance(m, dict) and set(m) - known
            if unknown and "unrecognized_message_keys" not in cav:
                cav.append("unrecognized_message_keys")
    tools = body.get("tools") or body.get("functions")
    if tools:
        feats.append("tools")
        for tl in tools:
            hosted = isinstance(tl, dict) and tl.get("type") in HOSTED_TOOL_TYPES
            if hosted and "hosted_tool" not in cav:
                cav.append("hosted_tool")
    if body.get("functions"):
        feats.append("legacy_functions")
    if body.get("tool_choice") is not None or body.get("function_call") is not None:
        feats.append("tool_choice")
    rf = body.get("response_format")
    if isinstance(rf, dict) and rf.get("type"):
        feats.append("response_format:" + rf["type"])
    tx = body.get("text")
    if isinstance(tx, dict) and isinstance(tx.get("format"), dict):
        feats.append("text:" + str(tx["format"].get("type")))
    if body.get("instructions") is not None:
        feats.append("instructions")
    if body.get("reasoning") or body.get("reasoning_effort"):
        feats.append("reasoning")
    if body.get("stream"):
        feats.append("stream")
    if body.get("prediction"):
        feats.append("prediction")
    if isinstance(msgs, str):
        feats.append("string_input")
    if has_image:
        kind = "image"
    elif tools or has_tool_traffic:
        kind = "tools"
        if has_tool_traffic:
            feats.append("tool_call_traffic")
    else:
        kind = "chat"
    return kind, feats, cav, None, images


def canon(o: Any) -> str:
    return json.dumps(o, ensure_ascii=False, sort_keys=False, separators=(",", ":"))


# -------------------------------------------------------- Batch API flows inside one cassette
def _jsonl_objs(text: str) -> list[Any]:
    out: list[Any] = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            with contextlib.suppress(Exception):
                out.append(json.loads(line))
    return out


def batch_pairs(inters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Batch input lines (POST /v1/files) paired with output lines (GET /v1/files/<id>/content).

    Paired through the batch objects and ``custom_id``; each pair is a dict with input_line,
    output_line, input_file_id, output_file_id, batch_id and upload_index.
    """
    uploads = {}  # file_id -> (idx, [lines])
    batch_in = {}  # batch id -> input_file_id
    batch_out = {}  # batch id -> output_file_id
    contents = {}  # file id -> (idx, [lines])
    for idx, it in enumerate(inters):
        try:
            u = urlparse(it["uri"])
        except Exception:
            continue
        host = (u.hostname or "").lower()
        if not (host == "api.openai.com" or host.endswith(".openai.azure.com")):
            continue
        path = u.path.rstrip("/")
        kind_r, robj = parse_json_or_sse(it["resp_raw"])
        if it["method"] == "POST" and path.endswith("/files"):
            b = _to_bytes(it["req_body"]) if not isinstance(it["req_body"], dict) else None
            if not b or b'"custom_id"' not in b:
                continue
            lines = _jsonl_objs(b.decode("utf-8", "replace"))
            if kind_r == "json" and isinstance(robj, dict) and robj.get("id"):
                uploads[robj["id"]] = (idx, lines)
        elif re.search(r"/files/[^/]+/content$", path):
            fid = path.split("/")[-2]
            raw = it["resp_raw"]
            b = _to_bytes(raw) if not isinstance(raw, (dict, list)) else None
            if b and b'"custom_id"' in b:
                contents[fid] = (idx, _jsonl_objs(b.decode("utf-8", "replace")))
        elif (
            "/batches" in path
            and kind_r == "json"
            and isinstance(robj, dict)
            and robj.get("object") == "batch"
        ):
            bid = robj.get("id")
            if robj.get("input_file_id"):
                batch_in[bid] = robj["input_file_id"]
            if robj.get("output_file_id"):
                batch_out[bid] = robj["output_file_id"]
    res = []
    for bid, out_fid in batch_out.items():
        in_fid = batch_in.get(bid)
        if in_fid not in uploads or out_fid not in contents:
            continue
        up_idx, in_lines = uploads[in_fid]
        c_idx, out_lines = contents[out_fid]
        by_cid: dict[Any, list[Any]] = {}
        for ln in in_lines:
            if isinstance(ln, dict) and "custom_id" in ln:
                by_cid.setdefault(ln["custom_id"], []).append(ln)
        for ol in out_lines:
            cid = ol.get("custom_id")
            cands = by_cid.get(cid) or []
            if len(cands) != 1:
                continue
            res.append(
                dict(
                    input_line=cands[0],
                    output_line=ol,
                    input_file_id=in_fid,
                    output_file_id=out_fid,
                    batch_id=bid,
                    upload_index=up_idx,
                    content_index=c_idx,
                )
            )
    return res


def _split_http(raw: bytes) -> tuple[str, dict[str, list[str]], bytes]:
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = raw.partition(b"\n\n")
    lines = head.decode("latin-1").splitlines()
    first = lines[0] if lines else ""
    headers: dict[str, list[str]] = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        headers.setdefault(k.strip(), []).append(v.strip())
    return first, headers, body


def _dechunk(body: bytes) -> bytes:
    out = b""
    rest = body
    while rest:
        line, _sep, rest = rest.partition(b"\r\n")
        try:
            n = int(line.split(b";")[0], 16)
        except ValueError:
            return body
        if n == 0:
            break
        out += rest[:n]
        rest = rest[n + 2 :]
    return out


def parse_httprr(b: bytes) -> list[dict[str, Any]]:
    res = []
    nl = b.index(b"\n")
    pos = nl + 1
    while pos < len(b):
        nl = b.find(b"\n", pos)
        if nl < 0:
            break
        try:
            sizes = b[pos:nl].split()
            a, c = int(sizes[0]), int(sizes[1])
        except ValueError:
            break
        req = b[nl + 1 : nl + 1 + a]
        resp = b[nl + 1 + a : nl + 1 + a + c]
        pos = nl + 1 + a + c
        f1, h1, body1 = _split_http(req)
        f2, h2, body2 = _split_http(resp)
        parts = f1.split()
        method, uri = (parts[0], parts[1]) if len(parts) >= 2 else ("", "")
        try:
            status = int(f2.split()[1])
        except Exception:
            status = None
        te = header_get(h2, "transfer-encoding")
        if te and "chunked" in te.lower():
            body2 = _dechunk(body2)
        body2 = decompress(body2, header_get(h2, "content-encoding"))
        res.append(
            dict(
                uri=uri,
                method=method.upper(),
                req_body=body1,
                req_note=None,
                resp_raw=body2,
                resp_headers=h2,
                status=status,
                req_headers=h1,
            )
        )
    return res


def parse_har(doc: dict[str, Any]) -> list[dict[str, Any]]:
    res = []
    for e in doc["log"]["entries"]:
        rq, rs = e.get("request") or {}, e.get("response") or {}
        pd = rq.get("postData") or {}
        body = pd.get("text")
        content = rs.get("content") or {}
        raw = content.get("text")
        if raw is not None and content.get("encoding") == "base64":
            with contextlib.suppress(Exception):
                raw = base64.b64decode(raw)
        hdrs = {
            h.get("name"): h.get("value") for h in (rs.get("headers") or []) if isinstance(h, dict)
        }
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogatepass")
        if isinstance(raw, bytes):
            raw = decompress(raw, header_get(hdrs, "content-encoding"))
        # Polly stores chunked SSE bodies as a JSON list of strings sometimes
        if isinstance(raw, bytes) and raw[:2] == b'["':
            try:
                lst = json.loads(raw)
                if all(isinstance(x, str) for x in lst):
                    raw = "".join(lst).encode()
            except Exception:
                pass
        res.append(
            dict(
                uri=rq.get("url", ""),
                method=str(rq.get("method", "")).upper(),
                req_body=body,
                req_note=None,
                req_headers={
                    h.get("name"): h.get("value")
                    for h in (rq.get("headers") or [])
                    if isinstance(h, dict)
                },
                resp_raw=raw,
                resp_headers=hdrs,
                status=rs.get("status"),
                started=e.get("startedDateTime"),
                har_id=e.get("_id"),
            )
        )
    return res


def parse_testproxy(doc: dict[str, Any]) -> list[dict[str, Any]]:
    res = []
    for e in doc["Entries"]:
        body = e.get("RequestBody")
        rb = e.get("ResponseBody")
        note = "testproxy_parsed_body" if isinstance(body, (dict, list)) else None
        if isinstance(rb, str):
            rb = rb.encode("utf-8", "surrogatepass")
        res.append(
            dict(
                uri=e.get("RequestUri", ""),
                method=str(e.get("RequestMethod", "")).upper(),
                req_body=body,
                req_note=note,
                resp_raw=rb,
                resp_headers=e.get("ResponseHeaders"),
                status=e.get("StatusCode"),
            )
        )
    return res


SERVER_HEADER_HINTS = (
    "openai-processing-ms",
    "openai-version",
    "x-request-id",
    "cf-ray",
    "apim-request-id",
    "x-ratelimit-limit-requests",
    "openai-organization",
    "x-envoy-upstream-service-time",
    "azureml-model-session",
    "x-ms-region",
    "x-ms-rai-invoked",
    "openai-project",
    "date",
)


def authenticity(resp_headers: Any, resp_obj: Any) -> list[str]:
    """Return list of evidence strings for a real recording."""
    ev = []
    hn = set()
    if isinstance(resp_headers, dict):
        hn = {str(k).lower() for k in resp_headers}
    elif isinstance(resp_headers, list):
        hn = {str(kv[0]).lower() for kv in resp_headers if isinstance(kv, (list, tuple)) and kv}
    hits = sorted(h for h in SERVER_HEADER_HINTS if h in hn and h != "date")
    if hits:
        ev.append("server_headers")
    objs = resp_obj if isinstance(resp_obj, list) else [resp_obj]
    for o in objs:
        if not isinstance(o, dict):
            continue
        rid = (
            o.get("id") or (o.get("response") or {}).get("id")
            if isinstance(o.get("response"), dict) or o.get("id")
            else None
        )
        if isinstance(rid, str) and re.match(
            r"^(chatcmpl-[A-Za-z0-9]{20,}|resp_[0-9a-f]{40,}|resp-[A-Za-z0-9]{20,})$", rid
        ):
            ev.append("realistic_response_id")
            break
    for o in objs:
        if (
            isinstance(o, dict)
            and o.get("object") == "list"
            and isinstance(o.get("data"), list)
            and o["data"]
        ):
            emb = o["data"][0].get("embedding") if isinstance(o["data"][0], dict) else None
            if (isinstance(emb, list) and len(emb) >= 256) or (
                isinstance(emb, str) and len(emb) > 1000
            ):
                ev.append("full_embedding_vector")
            break
    return ev


def parse_nock(doc: list[Any]) -> list[dict[str, Any]]:
    res = []
    for e in doc:
        if not isinstance(e, dict):
            continue
        uri = str(e.get("scope", "")).rstrip("/") + str(e.get("path", ""))
        body = e.get("body")
        note = "nock_parsed_body" if isinstance(body, (dict, list)) else None
        if isinstance(body, str):
            body = body.encode()
        raw = e.get("response")
        hdrs = {}
        rh = e.get("rawHeaders")
        if isinstance(rh, list):
            for i in range(0, len(rh) - 1, 2):
                hdrs[rh[i]] = rh[i + 1]
        elif isinstance(rh, dict):
            hdrs = rh
        if isinstance(raw, list) and raw and all(isinstance(x, str) for x in raw):
            joined = "".join(raw)
            try:  # nock stores gzip responses as hex chunks
                raw = decompress(bytes.fromhex(joined), header_get(hdrs, "content-encoding"))
            except ValueError:
                raw = joined.encode()
        elif isinstance(raw, str):
            raw = raw.encode()
        res.append(
            dict(
                uri=uri,
                method=str(e.get("method", "")).upper(),
                req_body=body,
                req_note=note,
                resp_raw=raw,
                resp_headers=hdrs,
                status=e.get("status"),
            )
        )
    return res


def content_length_check(req_headers: Any, req_body: Any) -> str | None:
    """'match' / 'mismatch' / None (not checkable)."""
    cl = header_get(req_headers, "content-length")
    if cl is None or isinstance(req_body, (dict, list)) or req_body is None:
        return None
    try:
        cl = int(str(cl).strip())
    except ValueError:
        return None
    b = _to_bytes(req_body)
    if b is None:
        return None
    if len(b) == cl:
        return "match"
    try:
        o = json.loads(b.decode("utf-8"))
    except Exception:
        return "mismatch"
    for sep in ((",", ":"), (", ", ": ")):
        for ea in (False, True):
            if len(json.dumps(o, separators=sep, ensure_ascii=ea).encode("utf-8")) == cl:
                return "match_after_whitespace_normalisation"
    # Go's encoding/json escapes <, >, & as \u003c etc.
    t = json.dumps(o, separators=(",", ":"), ensure_ascii=False)
    t2 = t.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    if len(t2.encode("utf-8")) == cl:
        return "match_after_whitespace_normalisation"
    return "mismatch"
