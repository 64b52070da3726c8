"""``python -m nemo_aligner_plugin.checks M.json [--audio] [--samples] [--tokenizer DIR]`` (see ``cli.py``).

Kept apart from ``__init__`` so that ``-m`` runs a module the package never imported (no runpy warning).
"""

import sys

from nemo_aligner_plugin.checks.cli import main

sys.exit(main())
