"""Regenerate samples/broken.jsonl and samples/broken.expected.json.

Every line of broken.jsonl shows exactly one problem; broken.expected.json lists the
finding each line must produce (target azure: Azure does not document streaming in
batch, so ``stream`` is a warning there). The tests compare the two.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).parent
SYSTEM = {"role": "system", "content": "You are a helpful assistant."}


def request(cid: object, **changes: object) -> dict[str, object]:
    line: dict[str, object] = {
        "custom_id": cid,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {
            "model": "gpt-4o-batch",
            "messages": [SYSTEM, {"role": "user", "content": f"Question {cid}"}],
        },
    }
    for key, value in changes.items():
        if key.startswith("body_"):
            body = dict(line["body"])  # type: ignore[arg-type]
            if value is None:
                body.pop(key[5:], None)
            else:
                body[key[5:]] = value
            line["body"] = body
        elif value is None:
            line.pop(key, None)
        else:
            line[key] = value
    return line


def dump(obj: object) -> bytes:
    return json.dumps(obj).encode()


ROWS: list[tuple[bytes, str, str, str | None]] = [
    (b"\xef\xbb\xbf" + dump(request("ok-1")) + b"\n", "utf8_bom", "error", None),
    (dump(request("t2"))[:-20] + b"\n", "invalid_json_line", "error", None),
    (b"[1, 2, 3]\n", "not_an_object", "error", None),
    (dump(request("t4", custom_id=None)) + b"\n", "missing_custom_id", "error", "custom_id"),
    (dump(request(42)) + b"\n", "invalid_custom_id", "error", "custom_id"),
    (dump(request("ok-1")) + b"\n", "duplicate_custom_id", "error", "custom_id"),
    (dump(request("t7", method="GET")) + b"\n", "invalid_method", "error", "method"),
    (dump(request("t8", url=None)) + b"\n", "missing_url", "error", "url"),
    (dump(request("t9", url="/v1/embeddings")) + b"\n", "unsupported_url", "error", "url"),
    (dump(request("t10", url="/chat/completions")) + b"\n", "url_mismatch", "error", "url"),
    (dump(request("t11", body_model=None)) + b"\n", "missing_model", "error", "body.model"),
    (
        dump(request("t12", body_model="gpt-35-turbo-batch")) + b"\n",
        "model_mismatch",
        "error",
        "body.model",
    ),
    (
        dump(request("t13", body_model="REPLACE-WITH-MODEL-DEPLOYMENT-NAME")) + b"\n",
        "placeholder_model",
        "error",
        "body.model",
    ),
    (
        dump(request("t14", body_messages=[{"role": "robot", "content": "hi"}])) + b"\n",
        "invalid_body",
        "error",
        "body.messages[0].role",
    ),
    (
        dump(request("t15", body_stream=True)) + b"\n",
        "stream_not_supported",
        "warning",
        "body.stream",
    ),
    (b"   \n", "blank_line", "warning", None),
    (
        dump(request("t17")).replace(b"Question", b"Qu\xffestion") + b"\n",
        "invalid_utf8",
        "error",
        None,
    ),
    (
        b'{"custom_id": "t18", "custom_id": "t18b", '
        + dump(request("t18"))[len(b'{"custom_id": "t18", ') :]
        + b"\n",
        "duplicate_key",
        "warning",
        None,
    ),
    (
        dump(request("t19")).replace(b'"model"', b'"temperature": NaN, "model"') + b"\n",
        "invalid_json_line",
        "error",
        None,
    ),
    (dump(request("t20")) + b"\r\n", "crlf_line_ending", "warning", None),
    (dump(request("t21", metadata={"a": "b"})) + b"\n", "unknown_field", "warning", None),
    (dump(request(" ")) + b"\n", "blank_custom_id", "warning", "custom_id"),
    (
        dump(request("t23", body_max_tokens="100")) + b"\n",
        "invalid_body",
        "error",
        "body.max_tokens",
    ),
    (dump(request("t24", body=None)) + b"\n", "missing_body", "error", "body"),
    (dump(request("t25")), "missing_final_newline", "warning", None),
]


def main() -> None:
    (HERE / "broken.jsonl").write_bytes(b"".join(raw for raw, *_ in ROWS))
    expected = [
        {"line": n, "code": code, "severity": severity, "path": path}
        for n, (_raw, code, severity, path) in enumerate(ROWS, start=1)
    ]
    (HERE / "broken.expected.json").write_text(json.dumps(expected, indent=1) + "\n")


if __name__ == "__main__":
    main()
