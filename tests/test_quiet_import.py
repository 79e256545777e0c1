"""A library never prints at import: only a module run as a program says what is starting (before torch loads)."""

from __future__ import annotations

import importlib
import sys
from types import SimpleNamespace

import lvo_core
from lvo_core.progress import announce_program


def test_importing_the_package_under_python_m_prints_nothing(capsys, monkeypatch):
    """What ``python -m lvo_core atlas`` looked like while the package loaded (runpy sets argv[0] to ``-m``)."""
    monkeypatch.setattr(sys, "argv", ["-m", "atlas", "--out", "x"])
    monkeypatch.setattr(sys, "orig_argv", [sys.executable, "-m", "lvo_core", "atlas", "--out", "x"], raising=False)
    importlib.reload(lvo_core)
    assert capsys.readouterr() == ("", "")


def test_a_program_announces_itself_and_a_library_import_does_not(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["/x/__main__.py", "atlas", "--out", "x"])
    announce_program("lvo_core.bench", SimpleNamespace(name="lvo_core.bench"))  # imported, not run
    assert capsys.readouterr().err == ""
    announce_program("__main__", SimpleNamespace(name="lvo_core.__main__"))
    assert capsys.readouterr().err == "lvo_core atlas: loading torch and diffusers …\n"
    announce_program("__main__", SimpleNamespace(name="lvo_core.toy.train"))
    assert capsys.readouterr().err == "lvo_core.toy.train: loading torch and diffusers …\n"
    for args in (["atlas", "--help"], ["--version"], []):
        monkeypatch.setattr(sys, "argv", ["/x/__main__.py", *args])
        announce_program("__main__", SimpleNamespace(name="lvo_core.__main__"))
        assert capsys.readouterr().err == "", args
