"""The flatness tool: scale-invariant flatness of anyone's model from the command line
(``landscapes-flatness``, ``python -m landscapes.flatness``) and the workflow's
``user_models`` rule. A layer beside the chapters: it uses ``landscapes.core`` and
``landscapes.pipeline``, and nothing imports it but scripts.

Modules: ``settings`` (``FlatnessSettings``, one measurement), ``loading`` (model,
weights and data, each problem an ``InputError`` before any HVP), ``measure`` (the
spectra, the table, the density figure), ``cli`` (the command).
"""

from landscapes.flatness.cli import main, run
from landscapes.flatness.loading import InputError
from landscapes.flatness.measure import format_table, measure
from landscapes.flatness.settings import FlatnessSettings

__all__ = ["FlatnessSettings", "InputError", "format_table", "main", "measure", "run"]
