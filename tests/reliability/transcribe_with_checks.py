"""Run recipes/transcribe_aligner.py as a user does, with the proposed checks integration applied.

python tests/reliability/transcribe_with_checks.py model_path=... dataset_manifest=...
"""

import importlib.util
import sys
from pathlib import Path

import checks_integration  # tests/reliability/ is sys.path[0] when this runs as a script

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "transcribe_aligner.py"

if __name__ == "__main__":
    checks_integration.integrate()
    spec = importlib.util.spec_from_file_location("transcribe_aligner", RECIPE)
    recipe = importlib.util.module_from_spec(spec)
    sys.modules["transcribe_aligner"] = recipe  # dataclasses look their module up there
    spec.loader.exec_module(recipe)
    checks_integration.integrate_transcribe_recipe(recipe)
    recipe.main.__wrapped__.__module__ = "__main__"  # hydra then reads the task's file, as for `python recipe.py`
    recipe.main()
