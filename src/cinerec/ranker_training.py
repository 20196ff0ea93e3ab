"""The former name of :mod:`cinerec.training.ranker`, kept for existing imports. This module
*is* that one (the same object in ``sys.modules``), so a setting patched through either name
is the one :func:`~cinerec.training.ranker.choose_ranker` reads."""

import sys

from cinerec.training import ranker

sys.modules[__name__] = ranker
