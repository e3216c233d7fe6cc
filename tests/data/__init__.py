"""Test data that lives in the repository (a clone passes alone): the public corpora, with their licences."""

from pathlib import Path

CORPORA = Path(__file__).resolve().parent / "corpora"
