"""Pinning the allocator's mmap threshold works here and never breaks start-up."""

from __future__ import annotations

import ctypes.util

import pytest

from exporter import process


def test_pinning_succeeds_on_glibc() -> None:
    if ctypes.util.find_library("c") is None:
        pytest.skip("no C library to tune")
    assert process.pin_mmap_threshold() is True


def test_missing_c_library_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    assert process.pin_mmap_threshold() is False
