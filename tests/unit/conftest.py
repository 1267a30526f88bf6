"""Fixtures ``impl`` (pure and compiled, parametrized), ``pure`` and ``compiled``."""

from tests.impl import compiled, impl, pure  # noqa: F401 - re-exported as fixtures
