"""Reference pipeline for loss-landscape research (thesis Chapters 2-4).

Modules are named for what they hold: ``flatness`` (Chapter 3's scale-invariant
measure), ``sparse_coding`` (Chapter 2), ``encoders`` (Chapter 4's partial
observation and pixel-wise coded exposure), ``datasets``, ``models``, ``train``.
"""

__version__ = "0.1.0"
