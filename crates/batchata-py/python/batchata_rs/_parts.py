"""Chat messages as batchata 0.4.7 takes them, turned into what the core
can carry.

0.4.7 passes ``messages`` to the provider as they are, content lists
included. The core's chat messages are text, and a job sends at most one
file (a PDF, text, image or Word document) with a prompt. So:

- a message's content is a string, or a list of text parts (plain strings
  or ``{"type": "text", "text": ...}``), joined with newlines;
- a chat that is one user message holding one image or document part and
  text parts becomes a file job: the part's data is written once to
  ``{results_dir}/inputs/`` (named by its content's hash, so a rerun finds
  the same file and the same job id) and the text is the prompt. The parts
  taken are Anthropic's ``image`` and ``document`` with a ``base64`` (or,
  for documents, ``text``) source, and OpenAI's ``image_url`` with a
  ``data:`` URL and ``file`` with ``file_data``;
- anything else (URLs, file ids, several files, a file beside other
  messages) is refused with the job's index and the part's position.
"""

import os
import re

from .exceptions import ValidationError

# base64 and hashlib are imported where a file part is met: a text-only
# batch never loads them.

# Media type -> the extension the core reads that kind of file by.
_EXTENSIONS = {
    "application/pdf": "pdf",
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/jpg": "jpg",
    "image/gif": "gif",
    "image/webp": "webp",
    "text/plain": "txt",
    "text/markdown": "md",
    "text/csv": "csv",
    "text/html": "html",
    "text/xml": "xml",
    "application/xml": "xml",
    "application/json": "json",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
}

_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")


def _refuse(index, where, why):
    raise ValidationError(
        f"job {index}: {where}: {why}; batchata_rs sends an image or document only as the job's "
        "one file: a chat of one user message with one image or document part and text parts, "
        "or add_job(file=..., prompt=...)"
    )


def convert_messages(messages, index, results_dir):
    """``(pairs, file, prompt, citations)``: ``pairs`` is ``[(role, text)]``
    for a text chat (file and prompt None); for a chat carrying one file,
    ``pairs`` is None and ``file``/``prompt`` are set (``citations`` True
    when the document part asked for them)."""
    if not isinstance(messages, (list, tuple)):
        raise ValidationError(f"job {index}: messages must be a list of dicts, got {type(messages).__name__}")
    out = []
    for i, m in enumerate(messages):
        if type(m) is not dict or "role" not in m:
            raise ValidationError(f"each message needs a 'role' and 'content': {m!r}")
        content = m.get("content", "")
        if type(content) is str:
            out.append((m["role"], content))
            continue
        if not isinstance(content, list):
            raise ValidationError(f"message content must be a string or a list: {content!r}")
        texts = []
        for j, part in enumerate(content):
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and part.get("type") == "text":
                texts.append(part.get("text", ""))
            else:
                return _file_job(messages, index, results_dir)
        out.append((m["role"], "\n".join(texts)))
    return out, None, None, False


def _file_job(messages, index, results_dir):
    """A chat with an image or document part, as a file job."""
    file_part = None
    texts = []
    for i, m in enumerate(messages):
        content = m.get("content", "")
        parts = content if isinstance(content, list) else [content]
        for j, part in enumerate(parts):
            where = f"messages[{i}].content[{j}]" if isinstance(content, list) else f"messages[{i}].content"
            if isinstance(part, str) or (isinstance(part, dict) and part.get("type") == "text"):
                if m["role"] != "user":
                    _refuse(index, f"messages[{i}]", f"a {m['role']!r} message beside a file cannot be sent")
                texts.append(part if isinstance(part, str) else part.get("text", ""))
                continue
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            if m["role"] != "user":
                _refuse(index, where, f"a {kind!r} part in a {m['role']!r} message cannot be sent")
            if file_part is not None:
                _refuse(index, where, f"a second file part ({kind!r})")
            file_part = (where, kind, part)
    if file_part is None:  # unreachable: called for a chat with a non-text part
        raise ValidationError(f"job {index}: no file part in messages")
    where, kind, part = file_part
    data, media_type, name, cite = _decode(index, where, kind, part)
    path = _write_input(results_dir, data, media_type, name)
    prompt = "\n".join(t for t in texts if t)
    return None, path, prompt, cite


def _data_url(index, where, url):
    """(bytes, media type) of a ``data:<type>;base64,<data>`` URL."""
    if not isinstance(url, str) or not url.startswith("data:"):
        _refuse(index, where, "only data: URLs can be sent (the core does not fetch URLs)")
    head, _, payload = url.partition(",")
    media_type = head[5:].split(";")[0].strip().lower()
    if ";base64" not in head:
        _refuse(index, where, "the data: URL is not base64")
    return _b64(index, where, payload), media_type


def _b64(index, where, payload):
    import base64
    import binascii

    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError, TypeError) as e:
        _refuse(index, where, f"its data is not valid base64 ({e})")


def _decode(index, where, kind, part):
    """(bytes, media type, wanted file name or None, citations) of a part."""
    if kind == "image_url":
        image_url = part.get("image_url")
        url = image_url.get("url") if isinstance(image_url, dict) else image_url
        data, media_type = _data_url(index, where, url)
        return data, media_type, None, False
    if kind == "file":
        f = part.get("file") or {}
        if "file_data" not in f:
            _refuse(index, where, "a 'file' part without file_data (file ids cannot be sent)")
        data, media_type = _data_url(index, where, f["file_data"])
        return data, media_type, f.get("filename"), False
    if kind in ("image", "document"):
        src = part.get("source") or {}
        stype = src.get("type")
        media_type = str(src.get("media_type", "")).lower()
        cite = bool((part.get("citations") or {}).get("enabled")) if kind == "document" else False
        if stype == "base64":
            return _b64(index, where, src.get("data", "")), media_type, part.get("title"), cite
        if stype == "text" and kind == "document":
            text = src.get("data", "")
            if not isinstance(text, str):
                _refuse(index, where, "a text document's data must be a string")
            return text.encode("utf-8"), media_type or "text/plain", part.get("title"), cite
        _refuse(index, where, f"a {kind!r} part with a {stype!r} source (only base64 data can be sent)")
    _refuse(index, where, f"a {kind!r} part is not supported")


def _write_input(results_dir, data, media_type, name):
    """Writes ``data`` once under ``{results_dir}/inputs/`` and returns its path.

    Named by a hash of the content, so the same part gives the same path
    (and the same job id) on every run; a given title becomes the file
    name, which providers show as the document's title."""
    import hashlib

    ext = _EXTENSIONS.get(media_type)
    if ext is None:
        raise ValidationError(
            f"media type {media_type!r} cannot be sent; supported are "
            + ", ".join(sorted(set(_EXTENSIONS)))
        )
    digest = hashlib.sha256(data).hexdigest()[:16]
    folder = os.path.join(results_dir or ".", "inputs")
    stem = _UNSAFE.sub("_", os.path.basename(str(name))).strip(" .") if name else ""
    if stem:
        if stem.lower().endswith("." + ext) or (ext == "jpg" and stem.lower().endswith(".jpeg")):
            filename = stem
        else:
            filename = f"{stem}.{ext}"
        folder = os.path.join(folder, digest)
    else:
        filename = f"{digest}.{ext}"
    path = os.path.join(folder, filename)
    if not os.path.isfile(path):
        os.makedirs(folder, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    return path
