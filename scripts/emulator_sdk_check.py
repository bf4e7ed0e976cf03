#!/usr/bin/env python3
"""Shape check: drive a running batchata emulator with the official SDKs.

Proves that what the emulator sends parses with the official `anthropic`,
`openai` and `google-genai` Python packages, and that no object carries
unexpected fields or lacks required ones (every raw JSON object is validated
against the SDK's pydantic model with `model_validate`, then compared key by
key, recursively).

Usage (start the emulator first, with a processing delay so cancel can be
exercised):

    cargo run -p batchata-emulator --example serve -- 8765 --delay-ms 1500 --api-key sdk-check-key &
    python3 -m venv /tmp/sdkvenv && /tmp/sdkvenv/bin/pip install anthropic openai google-genai
    /tmp/sdkvenv/bin/python scripts/emulator_sdk_check.py [--base-url http://127.0.0.1:8765]

The base URL can also come from EMULATOR_URL. Exits non-zero on any failure.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
from typing import Any

import io

import anthropic
import openai
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as gtypes

try:  # newer SDK releases ship their HTTP client as `httpx2`
    import httpx2 as httpx
except ImportError:  # pragma: no cover - older SDKs use httpx
    import httpx
from anthropic.types.messages import (
    DeletedMessageBatch,
    MessageBatch,
    MessageBatchIndividualResponse,
)
from anthropic.types.shared.error_response import ErrorResponse as AnthropicErrorResponse
from openai.types import Batch, FileDeleted, FileObject
from openai.types.chat import ChatCompletion
from pydantic import BaseModel

FAILURES: list[str] = []
CHECKS = 0


def fail(msg: str) -> None:
    FAILURES.append(msg)
    print(f"  FAIL {msg}")


def compare(obj: Any, raw: Any, path: str) -> None:
    """Recursively checks that `raw` has exactly the fields the model knows
    (no unexpected keys) and every required one."""
    global CHECKS
    CHECKS += 1
    if isinstance(obj, BaseModel):
        if not isinstance(raw, dict):
            fail(f"{path}: expected an object, got {type(raw).__name__}")
            return
        fields = type(obj).model_fields
        by_key = {(f.alias or name): name for name, f in fields.items()}
        for key in raw:
            if key not in by_key:
                fail(f"{path}: unexpected field '{key}' for {type(obj).__name__}")
        for key, name in by_key.items():
            f = fields[name]
            if f.is_required() and key not in raw:
                fail(f"{path}: missing required field '{key}'")
            if key in raw:
                compare(getattr(obj, name), raw[key], f"{path}.{key}")
    elif isinstance(obj, list) and isinstance(raw, list):
        if len(obj) != len(raw):
            fail(f"{path}: length {len(obj)} != {len(raw)}")
        for i, (o, r) in enumerate(zip(obj, raw)):
            compare(o, r, f"{path}[{i}]")


def strict(model: type[BaseModel], raw: Any, path: str) -> Any:
    try:
        obj = model.model_validate(raw)
    except Exception as e:  # pydantic.ValidationError and friends
        fail(f"{path}: does not validate as {model.__name__}: {e}")
        return None
    compare(obj, raw, path)
    return obj


def keys_exactly(raw: dict, expected: set[str], path: str) -> None:
    got = set(raw)
    if got != expected:
        fail(f"{path}: keys {sorted(got)} != {sorted(expected)}")


def section(title: str) -> None:
    print(f"== {title}")


def build_pdf(lines: list[str]) -> bytes:
    content = "BT /F1 12 Tf 14 TL 72 720 Td\n" + "".join(f"({l}) Tj T*\n" for l in lines) + "ET"
    objs = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [4 0 R] /Count 1 >>",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents 5 0 R >>",
        f"<< /Length {len(content)} >>\nstream\n{content}\nendstream",
    ]
    out = "%PDF-1.4\n" + "".join(f"{i + 1} 0 obj\n{o}\nendobj\n" for i, o in enumerate(objs))
    return (out + "trailer\n<< /Size 6 /Root 1 0 R >>\n%%EOF\n").encode("latin-1")


def wait(retrieve, done, what: str, timeout: float = 30.0):
    deadline = time.time() + timeout
    while True:
        obj = retrieve()
        if done(obj):
            return obj
        if time.time() > deadline:
            fail(f"{what}: did not finish in {timeout}s (last: {obj})")
            return obj
        time.sleep(0.2)


INVOICE_SCHEMA = {
    "type": "object",
    "properties": {"invoice_number": {"type": "string"}, "total": {"type": "number"}},
    "required": ["invoice_number", "total"],
    "additionalProperties": False,
}


def check_anthropic(base: str, key: str) -> None:
    section("anthropic")
    client = anthropic.Anthropic(base_url=base, api_key=key, max_retries=0)
    batches = client.messages.batches
    pdf = base64.b64encode(build_pdf(["Invoice number: INV-001", "Total: 42.50"])).decode()
    requests = [
        {"custom_id": "plain", "params": {"model": "claude-sonnet-4-5", "max_tokens": 256,
                                          "messages": [{"role": "user", "content": "What is the capital of France?"}]}},
        {"custom_id": "schema", "params": {"model": "claude-sonnet-4-5", "max_tokens": 512,
                                           "output_config": {"format": {"type": "json_schema", "schema": INVOICE_SCHEMA}},
                                           "messages": [{"role": "user", "content": [
                                               {"type": "document", "citations": {"enabled": True},
                                                "source": {"type": "base64", "media_type": "application/pdf", "data": pdf}},
                                               {"type": "text", "text": "Extract the invoice."}]}]}},
        {"custom_id": "cited", "params": {"model": "claude-sonnet-4-5", "max_tokens": 512,
                                          "messages": [{"role": "user", "content": [
                                              {"type": "document", "title": "Notes", "citations": {"enabled": True},
                                               "source": {"type": "text", "media_type": "text/plain",
                                                          "data": "Paris is the capital. Revenue grew 12%."}},
                                              {"type": "document", "citations": {"enabled": True},
                                               "source": {"type": "content", "content": [{"type": "text", "text": "Block one."}]}},
                                              {"type": "text", "text": "What grew?"}]}]}},
        {"custom_id": "tool", "params": {"model": "claude-sonnet-4-5", "max_tokens": 512,
                                         "tools": [{"name": "save", "input_schema": INVOICE_SCHEMA}],
                                         "tool_choice": {"type": "tool", "name": "save"},
                                         "messages": [{"role": "user", "content": "Invoice number: A-9, Total: 3"}]}},
        {"custom_id": "bad", "params": {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "x"}]}},
        {"custom_id": "short", "params": {"model": "claude-sonnet-4-5", "max_tokens": 2,
                                          "messages": [{"role": "user", "content": "a long question that will be cut"}]}},
    ]

    raw = batches.with_raw_response.create(requests=requests)
    if not raw.http_response.headers.get("request-id"):
        fail("anthropic create: no request-id header")
    created = strict(MessageBatch, raw.http_response.json(), "anthropic.create")
    if created is None:
        return
    if created.processing_status != "in_progress" or created.request_counts.processing != len(requests):
        fail(f"anthropic.create: unexpected state {created}")

    def retrieve():
        r = batches.with_raw_response.retrieve(created.id)
        return strict(MessageBatch, r.http_response.json(), "anthropic.retrieve")

    ended = wait(retrieve, lambda b: b is None or b.processing_status == "ended", "anthropic batch")
    if ended is None:
        return
    counts = ended.request_counts
    if (counts.succeeded, counts.errored) != (5, 1):
        fail(f"anthropic counts: {counts}")

    # Results through the SDK (validates each line with its own models) ...
    by_id = {r.custom_id: r for r in batches.results(created.id)}
    if set(by_id) != {r["custom_id"] for r in requests}:
        fail(f"anthropic results ids: {sorted(by_id)}")
    # ... and raw, strictly.
    resp = httpx.get(ended.results_url, headers={"x-api-key": key, "anthropic-version": "2023-06-01"})
    for i, line in enumerate(l for l in resp.text.splitlines() if l.strip()):
        strict(MessageBatchIndividualResponse, json.loads(line), f"anthropic.results[{i}]")
    if by_id.get("bad") and by_id["bad"].result.type != "errored":
        fail("anthropic: 'bad' did not error")
    schema_msg = by_id["schema"].result.message
    parsed = json.loads(schema_msg.content[0].text)
    if parsed != {"invoice_number": "INV-001", "total": 42.5}:
        fail(f"anthropic schema answer: {parsed}")
    cites = [c for b in schema_msg.content if b.type == "text" and b.citations for c in b.citations]
    if not cites or any(c.type != "page_location" for c in cites):
        fail(f"anthropic pdf citations: {cites}")
    cited = by_id["cited"].result.message
    kinds = {c.type for b in cited.content if b.type == "text" and b.citations for c in b.citations}
    if kinds != {"char_location", "content_block_location"}:
        fail(f"anthropic citation kinds: {kinds}")
    tool_msg = by_id["tool"].result.message
    if tool_msg.stop_reason != "tool_use" or tool_msg.content[-1].input != {"invoice_number": "A-9", "total": 3}:
        fail(f"anthropic tool answer: {tool_msg}")
    if by_id["short"].result.message.stop_reason != "max_tokens":
        fail("anthropic: max_tokens not reported")

    # Paging: the SDK follows after_id until has_more is false.
    extra = batches.create(requests=requests[:1])
    listed = [b.id for b in batches.list(limit=1)]
    if created.id not in listed or extra.id not in listed or listed.index(extra.id) > listed.index(created.id):
        fail(f"anthropic list (newest first) missing batches: {listed}")
    page = client.get("/v1/messages/batches", cast_to=httpx.Response, options={"params": {"limit": 1}}).json()
    keys_exactly(page, {"data", "has_more", "first_id", "last_id"}, "anthropic.list")
    for i, b in enumerate(page["data"]):
        strict(MessageBatch, b, f"anthropic.list.data[{i}]")

    # Cancel (needs a processing delay on the emulator side).
    to_cancel = batches.create(requests=requests[:2])
    raw = batches.with_raw_response.cancel(to_cancel.id)
    canceling = strict(MessageBatch, raw.http_response.json(), "anthropic.cancel")
    if canceling is not None and canceling.processing_status != "canceling":
        fail(f"anthropic cancel status: {canceling.processing_status}")
    done = wait(lambda: batches.retrieve(to_cancel.id), lambda b: b.processing_status == "ended", "canceled batch")
    if done.request_counts.canceled + done.request_counts.succeeded != 2 or done.cancel_initiated_at is None:
        fail(f"anthropic canceled counts: {done.request_counts}")
    types = {r.result.type for r in batches.results(to_cancel.id)}
    if not types <= {"canceled", "succeeded"}:
        fail(f"anthropic canceled result types: {types}")

    # Delete and error envelopes.
    raw = batches.with_raw_response.delete(created.id)
    strict(DeletedMessageBatch, raw.http_response.json(), "anthropic.delete")
    try:
        batches.retrieve(created.id)
        fail("anthropic: retrieve after delete did not 404")
    except anthropic.NotFoundError as e:
        strict(AnthropicErrorResponse, e.body, "anthropic.404")
        if not e.request_id:
            fail("anthropic 404 without request id")
    r = httpx.get(f"{base}/v1/messages/batches", headers={"anthropic-version": "2023-06-01"})
    if r.status_code != 401:
        fail(f"anthropic: missing key gave {r.status_code}")
    else:
        strict(AnthropicErrorResponse, r.json(), "anthropic.401")


def check_openai(base: str, key: str) -> None:
    section("openai")
    client = openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0)
    lines = [
        {"custom_id": "plain", "method": "POST", "url": "/v1/chat/completions",
         "body": {"model": "gpt-5-mini", "messages": [{"role": "user", "content": "Say hi"}]}},
        {"custom_id": "schema", "method": "POST", "url": "/v1/chat/completions",
         "body": {"model": "gpt-5-mini",
                  "response_format": {"type": "json_schema", "json_schema": {"name": "invoice", "strict": True, "schema": INVOICE_SCHEMA}},
                  "messages": [{"role": "system", "content": "Extract."},
                               {"role": "user", "content": "Invoice number: INV-002\nTotal: 10"}]}},
        {"custom_id": "bad", "method": "POST", "url": "/v1/chat/completions",
         "body": {"model": "gpt-5-mini", "messages": []}},
    ]
    content = "".join(json.dumps(l) + "\n" for l in lines).encode()

    raw = client.files.with_raw_response.create(file=("batch.jsonl", content), purpose="batch")
    if not raw.http_response.headers.get("x-request-id"):
        fail("openai upload: no x-request-id header")
    f = strict(FileObject, raw.http_response.json(), "openai.files.create")
    if f is None:
        return
    strict(FileObject, client.files.with_raw_response.retrieve(f.id).http_response.json(), "openai.files.retrieve")
    if client.files.content(f.id).read() != content:
        fail("openai file content differs from the upload")

    raw = client.batches.with_raw_response.create(
        input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h", metadata={"run": "sdk-check"})
    created = strict(Batch, raw.http_response.json(), "openai.batches.create")
    if created is None:
        return
    if created.status != "validating" or created.metadata != {"run": "sdk-check"}:
        fail(f"openai create: {created}")

    def retrieve():
        r = client.batches.with_raw_response.retrieve(created.id)
        return strict(Batch, r.http_response.json(), "openai.batches.retrieve")

    done = wait(retrieve, lambda b: b is None or b.status in ("completed", "failed", "expired", "cancelled"), "openai batch")
    if done is None:
        return
    if done.status != "completed" or done.request_counts.completed != 2 or done.request_counts.failed != 1:
        fail(f"openai batch: {done.status} {done.request_counts}")
    out_file = strict(FileObject, client.files.with_raw_response.retrieve(done.output_file_id).http_response.json(), "openai.output_file")
    if out_file is not None and out_file.purpose != "batch_output":
        fail(f"openai output purpose: {out_file.purpose}")
    for i, line in enumerate(client.files.content(done.output_file_id).text.splitlines()):
        row = json.loads(line)
        keys_exactly(row, {"id", "custom_id", "response", "error"}, f"openai.output[{i}]")
        keys_exactly(row["response"], {"status_code", "request_id", "body"}, f"openai.output[{i}].response")
        completion = strict(ChatCompletion, row["response"]["body"], f"openai.output[{i}].body")
        if completion and row["custom_id"] == "schema":
            got = json.loads(completion.choices[0].message.content)
            if got != {"invoice_number": "INV-002", "total": 10}:
                fail(f"openai schema answer: {got}")
    for i, line in enumerate(client.files.content(done.error_file_id).text.splitlines()):
        row = json.loads(line)
        keys_exactly(row, {"id", "custom_id", "response", "error"}, f"openai.errors[{i}]")
        keys_exactly(row["response"]["body"]["error"], {"message", "type", "param", "code"}, f"openai.errors[{i}].error")

    # Failed validation.
    dup = "".join(json.dumps(l) + "\n" for l in [lines[0], lines[0]]).encode()
    f2 = client.files.create(file=("dup.jsonl", dup), purpose="batch")
    b2 = client.batches.create(input_file_id=f2.id, endpoint="/v1/chat/completions", completion_window="24h")
    failed = wait(lambda: strict(Batch, client.batches.with_raw_response.retrieve(b2.id).http_response.json(), "openai.failed"),
                  lambda b: b is None or b.status == "failed", "failing batch")
    if failed is not None and (not failed.errors or failed.errors.data[0].code != "duplicate_custom_id"):
        fail(f"openai failed batch errors: {failed.errors}")

    # Cancel.
    b3 = client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
    cancelling = strict(Batch, client.batches.with_raw_response.cancel(b3.id).http_response.json(), "openai.cancel")
    if cancelling is not None and cancelling.status != "cancelling":
        fail(f"openai cancel: {cancelling.status}")
    cancelled = wait(lambda: client.batches.retrieve(b3.id), lambda b: b.status == "cancelled", "cancelled batch")
    if cancelled.cancelled_at is None:
        fail("openai cancelled_at missing")

    # Paging: the SDK follows `after` until has_more is false.
    listed = [b.id for b in client.batches.list(limit=1)]
    if not {created.id, b2.id, b3.id} <= set(listed):
        fail(f"openai list missing batches: {listed}")
    page = client.get("/batches", cast_to=httpx.Response, options={"params": {"limit": 2}}).json()
    keys_exactly(page, {"object", "data", "first_id", "last_id", "has_more"}, "openai.list")
    for i, b in enumerate(page["data"]):
        strict(Batch, b, f"openai.list.data[{i}]")

    strict(FileDeleted, client.files.with_raw_response.delete(f2.id).http_response.json(), "openai.files.delete")
    try:
        client.batches.retrieve("batch_does_not_exist")
        fail("openai: unknown batch did not 404")
    except openai.NotFoundError as e:
        keys_exactly(e.body if isinstance(e.body, dict) else {}, {"message", "type", "param", "code"}, "openai.404")


def check_gemini(base: str, key: str) -> None:
    """The google-genai SDK on the emulator's Gemini routes: inline and file
    batches, get, list, cancel, delete, results, file upload and download, and
    the raw JSON of answers and files against the SDK's own types."""
    section("gemini")
    # The SDK's default API version (v1 in 3.x) and the docs' v1beta.
    clients = {
        "default": genai.Client(api_key=key, http_options={"base_url": base}),
        "v1beta": genai.Client(api_key=key, http_options={"base_url": base, "api_version": "v1beta"}),
    }
    raw_headers = {"x-goog-api-key": key}
    pdf = base64.b64encode(build_pdf(["Invoice number: INV-003", "Total: 99.5"])).decode()
    for label, client in clients.items():
        batches = client.batches
        requests = [
            {"contents": [{"role": "user", "parts": [{"text": "What is the capital of France?"}]}],
             "metadata": {"key": "plain"}},
            {"contents": [{"role": "user", "parts": [
                {"inline_data": {"mime_type": "application/pdf", "data": base64.b64decode(pdf)}},
                {"text": "Extract the invoice."}]}],
             "config": {"response_mime_type": "application/json", "response_json_schema": INVOICE_SCHEMA,
                        "system_instruction": "Extract fields.", "max_output_tokens": 400},
             "metadata": {"key": "schema"}},
            {"contents": [{"role": "user", "parts": [{"text": "Invoice number: A-9, Total: 3"}]}],
             "config": {"response_mime_type": "application/json",
                        "response_schema": {"type": "OBJECT", "properties": {
                            "invoice_number": {"type": "STRING"}, "total": {"type": "NUMBER"}},
                            "required": ["invoice_number", "total"]}},
             "metadata": {"key": "openapi"}},
        ]
        created = batches.create(model="gemini-2.5-flash", src=requests, config={"display_name": f"sdk-check-{label}"})
        if not created.name or not created.name.startswith("batches/"):
            fail(f"gemini[{label}] create: name {created.name}")
            continue
        if created.state not in (gtypes.JobState.JOB_STATE_PENDING, gtypes.JobState.JOB_STATE_RUNNING):
            fail(f"gemini[{label}] create: state {created.state}")
        if created.display_name != f"sdk-check-{label}" or created.model != "models/gemini-2.5-flash":
            fail(f"gemini[{label}] create: {created}")
        done = wait(lambda: batches.get(name=created.name), lambda b: b.state in (
            gtypes.JobState.JOB_STATE_SUCCEEDED, gtypes.JobState.JOB_STATE_FAILED,
            gtypes.JobState.JOB_STATE_CANCELLED, gtypes.JobState.JOB_STATE_EXPIRED), f"gemini[{label}] batch")
        if done.state != gtypes.JobState.JOB_STATE_SUCCEEDED or done.end_time is None:
            fail(f"gemini[{label}] batch ended {done.state}")
            continue
        inlined = done.dest.inlined_responses if done.dest else None
        by_key = {r.metadata.get("key"): r for r in (inlined or []) if r.metadata}
        if set(by_key) != {"plain", "schema", "openapi"}:
            fail(f"gemini[{label}] inline results by key: {sorted(by_key)}")
            continue
        if any(r.error is not None or r.response is None for r in by_key.values()):
            fail(f"gemini[{label}] inline results with errors: {inlined}")
            continue
        if "capital of France" not in (by_key["plain"].response.text or ""):
            fail(f"gemini[{label}] plain answer: {by_key['plain'].response.text}")
        for k, want in (("schema", {"invoice_number": "INV-003", "total": 99.5}),
                        ("openapi", {"invoice_number": "A-9", "total": 3})):
            got = json.loads(by_key[k].response.text)
            if got != want:
                fail(f"gemini[{label}] {k} answer: {got}")
        usage = by_key["plain"].response.usage_metadata
        if not usage or not usage.prompt_token_count or not usage.thoughts_token_count:
            fail(f"gemini[{label}] usage: {usage}")

        # The raw Operation: proto3 JSON, both output locations, answers strict.
        raw = httpx.get(f"{base}/v1beta/{created.name}", headers=raw_headers).json()
        meta = raw.get("metadata", {})
        if raw.get("done") is not True or meta.get("state") != "BATCH_STATE_SUCCEEDED":
            fail(f"gemini[{label}] raw operation state: {meta.get('state')} done={raw.get('done')}")
        stats = meta.get("batchStats", {})
        if stats != {"requestCount": "3", "successfulRequestCount": "3"}:
            fail(f"gemini[{label}] batchStats (int64 strings, zeros left out): {stats}")
        if raw.get("response", {}).get("inlinedResponses") != meta.get("output", {}).get("inlinedResponses"):
            fail(f"gemini[{label}] output differs between metadata.output and response")
        for i, item in enumerate(raw["response"]["inlinedResponses"]["inlinedResponses"]):
            strict(gtypes.InlinedResponse, item, f"gemini[{label}].inlinedResponses[{i}]")

        # List pages until the batch shows up (newest first).
        listed = [b.name for b in batches.list(config={"page_size": 1})]
        if created.name not in listed:
            fail(f"gemini[{label}] list: {created.name} missing from {listed}")
        page = httpx.get(f"{base}/v1beta/batches", params={"pageSize": 2}, headers=raw_headers).json()
        keys_exactly(page, {"operations", "nextPageToken"} if "nextPageToken" in page else {"operations"}, f"gemini[{label}].list")

        # Cancel (needs a processing delay on the emulator side).
        to_cancel = batches.create(model="gemini-2.5-flash", src=requests[:1])
        batches.cancel(name=to_cancel.name)
        cancelled = wait(lambda: batches.get(name=to_cancel.name),
                         lambda b: b.state == gtypes.JobState.JOB_STATE_CANCELLED, f"gemini[{label}] cancel")
        if cancelled.state != gtypes.JobState.JOB_STATE_CANCELLED:
            fail(f"gemini[{label}] cancel state: {cancelled.state}")

        # Delete; then the batch is gone.
        batches.delete(name=to_cancel.name)
        try:
            batches.get(name=to_cancel.name)
            fail(f"gemini[{label}] get after delete did not fail")
        except genai_errors.ClientError as e:
            if e.code != 404 or e.status != "NOT_FOUND":
                fail(f"gemini[{label}] get after delete: {e.code} {e.status}")

    # A file batch: the resumable upload, create from the file, download.
    client = clients["default"]
    lines = [{"key": f"line-{i}", "request": {"contents": [{"role": "user", "parts": [{"text": f"Line {i}"}]}]}}
             for i in range(3)]
    content = "".join(json.dumps(l) + "\n" for l in lines).encode()
    uploaded = client.files.upload(file=io.BytesIO(content),
                                   config={"mime_type": "application/jsonl", "display_name": "sdk-check"})
    if uploaded.size_bytes != len(content) or uploaded.source != gtypes.FileSource.UPLOADED:
        fail(f"gemini upload: {uploaded}")
    strict(gtypes.File, httpx.get(f"{base}/v1beta/{uploaded.name}", headers=raw_headers).json(), "gemini.files.get")
    fb = client.batches.create(model="gemini-2.5-flash-lite", src=uploaded.name)
    fdone = wait(lambda: client.batches.get(name=fb.name),
                 lambda b: b.state == gtypes.JobState.JOB_STATE_SUCCEEDED, "gemini file batch")
    result_file = fdone.dest.file_name if fdone.dest else None
    if not result_file:
        fail(f"gemini file batch: no result file in {fdone}")
    else:
        meta = client.files.get(name=result_file)
        if meta.source != gtypes.FileSource.GENERATED or not meta.download_uri:
            fail(f"gemini result file: {meta}")
        data = client.files.download(file=result_file)
        rows = [json.loads(l) for l in data.decode().splitlines() if l.strip()]
        if sorted(r.get("key") for r in rows) != ["line-0", "line-1", "line-2"]:
            fail(f"gemini result lines: {rows}")
        for i, row in enumerate(rows):
            keys_exactly(row, {"key", "response"}, f"gemini.results[{i}]")
            strict(gtypes.GenerateContentResponse, row.get("response"), f"gemini.results[{i}].response")
    client.files.delete(name=uploaded.name)

    # A wrong key: Google's 400 INVALID_ARGUMENT with reason API_KEY_INVALID.
    bad = genai.Client(api_key="wrong-key", http_options={"base_url": base})
    try:
        bad.batches.get(name=fb.name)
        fail("gemini: a wrong key was accepted (start the emulator with --api-key)")
    except genai_errors.ClientError as e:
        reasons = [d.get("reason") for d in (e.details or {}).get("error", {}).get("details", [])]
        if e.code != 400 or e.status != "INVALID_ARGUMENT" or "API_KEY_INVALID" not in reasons:
            fail(f"gemini wrong key: {e.code} {e.status} {reasons}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-url", default=os.environ.get("EMULATOR_URL", "http://127.0.0.1:8765"),
                    help="emulator root URL (Anthropic base; OpenAI base is <url>/v1)")
    ap.add_argument("--api-key", default=os.environ.get("EMULATOR_API_KEY", "sdk-check-key"))
    args = ap.parse_args()
    print(f"anthropic {anthropic.__version__}, openai {openai.__version__}, "
          f"google-genai {genai.__version__}, emulator {args.base_url}")
    for check in (check_anthropic, check_openai, check_gemini):
        try:
            check(args.base_url.rstrip("/"), args.api_key)
        except Exception as e:  # any SDK parse error or transport error is a failure
            fail(f"{check.__name__}: {type(e).__name__}: {e}")
    stats = httpx.get(f"{args.base_url.rstrip('/')}/_emulator/stats").json()
    print(f"emulator saw {stats['total_calls']} calls, {len(stats['batches'])} batches")
    if FAILURES:
        print(f"FAILED: {len(FAILURES)} problem(s) in {CHECKS} checks")
        return 1
    print(f"OK: {CHECKS} checks, no parse errors, no unexpected or missing fields")
    return 0


if __name__ == "__main__":
    sys.exit(main())
