"""Fixtures of the ESL tests; the helpers they use live in ``esl_support`` (importable by name)."""

from esl_support import fake_fs, farm  # noqa: F401  # re-exported as fixtures
