"""The flatness tool: scale-invariant flatness of anyone's model from the command line
(``flatscape``, ``python -m flatscape.flatness``) and the workflow's
``user_models`` rule. A layer beside the chapters: it uses ``flatscape.core`` and
``flatscape.pipeline``, and nothing imports it but scripts.

Modules: ``settings`` (``FlatnessSettings``, one measurement), ``loading`` (model,
weights and data, each problem an ``InputError`` before any HVP), ``measure`` (the
spectra, the table, the density figure), ``cli`` (the command).
"""

from flatscape.flatness.cli import main, run
from flatscape.flatness.loading import InputError
from flatscape.flatness.measure import format_table, measure
from flatscape.flatness.settings import FlatnessSettings

__all__ = ["FlatnessSettings", "InputError", "format_table", "main", "measure", "run"]
