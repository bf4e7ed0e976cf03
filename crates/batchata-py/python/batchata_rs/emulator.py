"""A local emulator of the Anthropic, OpenAI and Gemini batch APIs, for tests.

    from batchata_rs import emulator
    emu = emulator.start()        # sets the providers' env vars by default
    ...                           # Batch(...) talks to emu, not the providers
    emu.stop()

It is the same emulator the Rust tests use: answers follow the requested JSON
schema, citations point into the PDF sent, and ``error_rate`` makes that
fraction of requests come back as errors.
"""

import os
from typing import Dict, List, Optional

from . import _native

_ENV = {
    "anthropic": ("ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY"),
    "openai": ("OPENAI_BASE_URL", "OPENAI_API_KEY"),
    "gemini": ("GOOGLE_GEMINI_BASE_URL", "GEMINI_API_KEY"),
}


class Emulator:
    """A running emulator. Use as a context manager or call :meth:`stop`."""

    def __init__(self, native, api_key: str, saved_env: Optional[Dict[str, Optional[str]]]):
        self._native = native
        self.api_key = api_key
        self._saved_env = saved_env

    @property
    def base_url(self) -> str:
        return self._native.base_url

    @property
    def urls(self) -> Dict[str, str]:
        """Base URL per provider."""
        return {
            "anthropic": self._native.anthropic_base_url,
            "openai": self._native.openai_base_url,
            "gemini": self._native.gemini_base_url,
        }

    def env(self) -> Dict[str, str]:
        """The environment variables that point batchata_rs at this emulator."""
        out = {}
        for provider, (url_var, key_var) in _ENV.items():
            out[url_var] = self.urls[provider]
            out[key_var] = self.api_key
        return out

    def stop(self) -> None:
        """Stops the server and restores the environment variables it set."""
        self._native.stop()
        if self._saved_env is not None:
            for k, v in self._saved_env.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            self._saved_env = None

    def __enter__(self) -> "Emulator":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def write_pdf(path, pages: List[str]) -> None:
    """Writes a text PDF with one page per string: documents for tests."""
    _native.write_pdf(str(path), list(pages))


def start(
    processing_delay: float = 0.0,
    error_rate: float = 0.0,
    api_key: str = "emulator-key",
    seed: int = 0,
    set_env: bool = True,
) -> Emulator:
    """Starts an emulator on a free local port.

    With ``set_env`` (the default) the providers' base URL and API key
    variables are set to it until :meth:`Emulator.stop`; a ``Batch`` reads
    them when it is created.
    """
    native = _native.start_emulator(processing_delay, error_rate, api_key, seed)
    emu = Emulator(native, api_key, None)
    if set_env:
        env = emu.env()
        emu._saved_env = {k: os.environ.get(k) for k in list(env) + ["GOOGLE_API_KEY"]}
        os.environ.update(env)
        os.environ.pop("GOOGLE_API_KEY", None)  # it would win over GEMINI_API_KEY
    return emu
