"""Fixtures: an emulator per test session, a fresh working folder per test."""

import os
import sys
import types

import pytest

import batchata_rs


@pytest.fixture(scope="session")
def emulator():
    emu = batchata_rs.emulator.start()
    yield emu
    emu.stop()


@pytest.fixture
def workdir(tmp_path, monkeypatch, emulator):
    """Runs the test in an empty folder, as batchata's examples expect."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def no_dotenv(monkeypatch):
    """batchata's Complete Example calls python-dotenv's load_dotenv()."""
    mod = types.ModuleType("dotenv")
    mod.load_dotenv = lambda *a, **k: True
    monkeypatch.setitem(sys.modules, "dotenv", mod)


@pytest.fixture
def invoices(workdir):
    """Three invoice PDFs of two pages each."""
    paths = []
    for i in range(1, 4):
        p = workdir / "path" / "to" / f"invoice{i}.pdf"
        p.parent.mkdir(parents=True, exist_ok=True)
        batchata_rs.emulator.write_pdf(
            p,
            [
                f"Invoice number: INV-{i:04d}. Vendor: Acme Supplies Ltd.",
                f"Total amount: {100 * i}.50 USD. Payment status: paid.",
            ],
        )
        paths.append(p)
    return paths
