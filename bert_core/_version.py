"""The one home of tribert's version.

Every package (``bert_core``, ``tokenization``, ``conversion``,
``bert_pipelines``, the three backends, ``tribert``) re-exports this
``__version__``; pyproject.toml reads it for the distribution's metadata
(``[tool.setuptools.dynamic]``), so the wheel, ``tribert --version`` and every
``pkg.__version__`` agree without a second copy of the number.
"""

__version__ = "0.1.0"
