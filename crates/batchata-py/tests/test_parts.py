"""Image and document parts inside ``messages``, as batchata 0.4.7 passes
them to the provider, against the emulator."""

import base64
import struct
import zlib

import pytest

import batchata_rs
from batchata_rs import Batch

CLAUDE = "claude-sonnet-4-20250514"
GPT = "gpt-4.1-2025-04-14"


def png_1x1():
    """A 1x1 RGBA PNG."""
    def chunk(kind, data):
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0)
    pixels = zlib.compress(b"\x00\x00\x00\x00\x00")
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels)
            + chunk(b"IEND", b""))


PNG = base64.b64encode(png_1x1()).decode()


def pdf_b64(tmp_path, pages):
    path = tmp_path / "doc.pdf"
    batchata_rs.emulator.write_pdf(path, pages)
    return base64.b64encode(path.read_bytes()).decode()


def user(*parts):
    return [{"role": "user", "content": list(parts)}]


def test_anthropic_image_and_document_parts_run_as_the_jobs_file(workdir):
    pdf = pdf_b64(workdir, ["Invoice number: INV-0042. Vendor: Acme Supplies Ltd."])
    batch = (
        Batch("./out")
        .set_default_params(model=CLAUDE)
        .add_job(messages=user(
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
            {"type": "text", "text": "What is in this picture?"},
        ))
        .add_job(messages=user(
            {"type": "document", "title": "invoice.pdf", "citations": {"enabled": True},
             "source": {"type": "base64", "media_type": "application/pdf", "data": pdf}},
            {"type": "text", "text": "Who is the vendor?"},
        ))
        .add_job(messages=user(
            {"type": "document", "source": {"type": "text", "media_type": "text/plain",
                                            "data": "Meeting notes: ship on Friday."}},
            "When do we ship?",
        ))
    )
    image, document, text = batch.jobs
    assert image.file.suffix == ".png" and image.prompt == "What is in this picture?"
    assert image.messages is None
    assert document.file.name == "invoice.pdf" and document.enable_citations
    assert text.file.suffix == ".txt" and text.prompt == "When do we ship?"
    for job in batch.jobs:
        assert job.file.is_file() and (workdir / "out" / "inputs").resolve() in job.file.resolve().parents

    res = batch.run().results()
    assert [len(res[k]) for k in ("completed", "failed", "cancelled")] == [3, 0, 0]
    by_id = {r.job_id: r for r in res["completed"]}
    cited = by_id[document.id]
    assert cited.citations and all(c.source == "invoice.pdf" for c in cited.citations)


def test_openai_image_url_and_file_parts(workdir):
    pdf = pdf_b64(workdir, ["Total amount: 120.50 USD."])
    batch = (
        Batch("./out")
        .set_default_params(model=GPT)
        .add_job(messages=user(
            {"type": "text", "text": "Describe the image."},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        ))
        .add_job(messages=user(
            {"type": "file", "file": {"filename": "total.pdf",
                                      "file_data": f"data:application/pdf;base64,{pdf}"}},
            {"type": "text", "text": "What is the total?"},
        ))
    )
    assert batch.jobs[0].file.suffix == ".png"
    assert batch.jobs[1].file.name == "total.pdf"
    res = batch.run().results()
    assert [len(res[k]) for k in ("completed", "failed", "cancelled")] == [2, 0, 0]


def test_the_same_part_gives_the_same_file_and_job_id(workdir):
    def make():
        return Batch("./out").set_default_params(model=CLAUDE).add_job(messages=user(
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
            "Describe it.",
        ))

    a, b = make(), make()
    assert a.jobs[0].id == b.jobs[0].id and a.jobs[0].file == b.jobs[0].file


@pytest.mark.parametrize(
    "messages, where",
    [
        # A URL: the core sends bytes, it does not fetch.
        (user("Look:", {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}),
         "messages[0].content[1]"),
        (user({"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}),
         "messages[0].content[0]"),
        # Two files in one job.
        (user({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
              {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}),
         "messages[0].content[1]"),
        # A file beside a system message: a file job has no system text.
        ([{"role": "system", "content": "Be brief."}]
         + user({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}),
         "messages[0]"),
        # A part type the core cannot carry at all.
        (user({"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}),
         "messages[0].content[0]"),
    ],
)
def test_parts_the_core_cannot_carry_are_refused_by_position(workdir, messages, where):
    batch = Batch("./out").set_default_params(model=GPT)
    batch.add_job(messages=[{"role": "user", "content": "a first, plain job"}])
    with pytest.raises(batchata_rs.ValidationError) as e:
        batch.add_job(messages=messages)
    assert str(e.value).startswith(f"job 1: {where}:"), str(e.value)
    assert len(batch) == 1
