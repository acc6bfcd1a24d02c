"""Saving and loading runs: netCDF through ArviZ (host code only)."""

from __future__ import annotations

import os

__all__ = ["load", "save"]


def save(run, path: str | os.PathLike) -> str:
    """Write ``run.to_arviz()`` (a Run) or an InferenceData to a netCDF file.

    Returns the path written.
    """
    idata = run.to_arviz() if hasattr(run, "to_arviz") else run
    path = os.fspath(path)
    idata.to_netcdf(path)
    return path


def load(path: str | os.PathLike):
    """Read a netCDF file written by :func:`save` as an ``arviz.InferenceData``."""
    from energymc.diagnostics import _az

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path}")
    return _az().from_netcdf(path)
