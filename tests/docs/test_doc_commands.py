"""Every code block of README.md and the pages it links to, run as written on tiny data (issue 25).

bash blocks: each ``python ...`` command runs in a sandbox where the file names the docs use exist
(doc_sandbox.PLACEHOLDERS); the training recipes get the tiny-model overrides appended (TRAINING_OVERRIDES).
``make`` commands are checked with ``make -n`` only. python blocks of a page run in order in one interpreter
session; yaml blocks are parsed and their keys looked up in the shipped configs. A block or command not run
carries a ``<!-- doc-test: ... -->`` marker with its reason (doc_blocks.py); the reasons are listed at the end of
the pytest output. A new block without a way to run it fails ``test_every_block_is_run_or_skipped``.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from doc_blocks import REPO, Block, Command, all_blocks, commands, not_run
from doc_sandbox import TEXT_SUBSTITUTIONS, TRAINING_OVERRIDES, TRAINING_SCRIPTS, Zygote, build_sandbox

BLOCKS = all_blocks()
COMMANDS = [c for b in BLOCKS if b.lang in ("bash", "inline") and not b.skip for c in commands(b)]
COMMAND_TIMEOUT_S = 300
# names a python snippet may use without defining them (marker ``given``), and how the test defines them
GIVEN = {
    "loaded_model": "from nemo.collections.asr.models import ASRModel\n"
    "loaded_model = ASRModel.restore_from('conformer_ctc.nemo')",
    "trainer": "import lightning.pytorch as pl\n"
    "trainer = pl.Trainer(accelerator='cpu', devices=1, max_steps=2, logger=False, enable_checkpointing=False)",
    "cfg": "from omegaconf import OmegaConf\n"  # finetune_from_conformer.yaml holding the yaml block's section
    "cfg = OmegaConf.load('configs/finetune_from_conformer.yaml')\n"
    f"cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist({TRAINING_OVERRIDES!r} + [\n"
    "    'init_from_nemo_model.encoder.path=conformer_ctc.nemo', 'model.tokenizer.dir=tokenizers/bpe1024',\n"
    "    'model.train_ds.manifest_filepath=train.json']))",
}


def program(command: Command) -> str:
    return command.argv[0] if command.argv else ""


def skip_reason(command: Command) -> str | None:
    return command.block.skip or command.block.skip_commands.get(command.number)


def command_param(command: Command):
    slow = command.block.slow_commands.get(command.number)
    return pytest.param(command, id=command.where, marks=[pytest.mark.slow] if slow else [])


def block_param(block: Block):
    return pytest.param(block, id=block.where)


class NotRunSummary:
    """A pytest plugin printing ``not_run()`` after the run, so that every skip is in plain sight."""

    def pytest_terminal_summary(self, terminalreporter):
        terminalreporter.section("documentation blocks and commands not run by default (doc-test markers)")
        for line in not_run():
            terminalreporter.line(line)


@pytest.fixture(scope="module", autouse=True)
def print_not_run(request):
    if not request.config.pluginmanager.has_plugin("doc-test-not-run"):
        request.config.pluginmanager.register(NotRunSummary(), "doc-test-not-run")


@pytest.mark.unit
def test_every_block_is_run_or_skipped():
    """Each block has a language this test runs, each marker parses and points at something, each skip says why."""
    problems = []
    for block in BLOCKS:
        if block.lang not in ("bash", "python", "yaml", "inline", ""):
            problems.append(f"{block.where}: fence language {block.lang!r} (expected bash, python, yaml or none)")
        problems += [f"{block.where}: unreadable doc-test marker {m!r}" for m in block.unknown_markers]
        numbered = {**block.skip_commands, **block.slow_commands}
        if block.skip is not None and not block.skip or any(not reason for reason in numbered.values()):
            problems.append(f"{block.where}: a skip or slow marker without its reason")
        if numbered and (block.lang != "bash" or max(numbered) > len(commands(block))):
            problems.append(f"{block.where}: a numbered marker for a command the block does not have")
        problems += [f"{block.where}: given name {n!r} is not in GIVEN" for n in block.given if n not in GIVEN]
    for command in COMMANDS:
        if program(command) not in ("python", "make") and not skip_reason(command):
            problems.append(f"{command.where}: {program(command)!r} is neither run nor skipped: {command.text}")
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory, trained_nemo, tone_manifest, tokenizer_dir, tone_texts):
    root = tmp_path_factory.mktemp("doc_sandbox")
    env = build_sandbox(root, trained_nemo, tone_manifest, tokenizer_dir, tone_texts)
    (root / "logs").mkdir()
    zygote = Zygote(env)
    yield root, zygote
    zygote.close()


def log_tail(path: Path, chars: int = 4000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else "(no output)"


def expected_outputs(argv: list[str]) -> list[str]:
    """Files a command says it writes: ``output_filename=X``, ``--out X``."""
    outputs = [a.split("=", 1)[1] for a in argv if a.startswith("output_filename=")]
    return outputs + [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--out"]


@pytest.mark.unit
@pytest.mark.parametrize("command", [command_param(c) for c in COMMANDS if program(c) == "make"])
def test_make_target_exists(command):
    proc = subprocess.run(["make", "-n", *command.argv[1:]], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"{command.where}: `make -n {' '.join(command.argv[1:])}`: {proc.stderr}"


@pytest.mark.unit
@pytest.mark.parametrize("command", [command_param(c) for c in COMMANDS if program(c) == "python"])
def test_command_runs_as_written(command, request):
    """The command, placeholders standing in for the files it names; training with the tiny overrides."""
    if skip_reason(command):
        pytest.skip(f"{command.where}: {skip_reason(command)}")
    root, zygote = request.getfixturevalue("sandbox")
    text = command.text
    for placeholder, value in TEXT_SUBSTITUTIONS.items():
        text = text.replace(placeholder, value)
    argv = dataclasses.replace(command, text=text).argv[1:]
    argv = [a for a in argv if not (a.startswith("[") or a.endswith("]"))]  # [--optional ...] of a synopsis
    if argv and argv[0] in TRAINING_SCRIPTS:
        argv += TRAINING_OVERRIDES
    request = {"module": argv[1], "argv": argv[2:]} if argv[0] == "-m" else {"script": argv[0], "argv": argv[1:]}
    log = root / "logs" / f"{command.where.replace('/', '_')}.log"
    started = time.time()
    rc = zygote.run({**request, "cwd": str(root), "log": str(log)}, timeout=COMMAND_TIMEOUT_S)
    assert rc == 0, f"{command.where}: `{command.text}` exited with {rc}:\n{log_tail(log)}"
    for output in expected_outputs(argv):
        assert (root / output).exists() and (root / output).stat().st_mtime >= started, f"{command.where}: {output}"
    if argv[0] in TRAINING_SCRIPTS:
        written = [p for p in (root / "exp").rglob("*.nemo") if p.stat().st_mtime >= started]
        assert written, f"{command.where}: training wrote no .nemo under exp/:\n{log_tail(log)}"


PYTHON_PAGES = sorted({b.page for b in BLOCKS if b.lang == "python"})


@pytest.fixture(scope="module")
def python_sessions(sandbox):
    """Per page: each python block's traceback (None: ran), all blocks of the page run in one session."""
    root, zygote = sandbox
    sessions = {}

    def session(page: str) -> dict[str, str | None]:
        if page not in sessions:
            sources, order = [], []
            for block in (b for b in BLOCKS if b.page == page and b.lang == "python" and not b.skip):
                sources += [GIVEN[name] for name in block.given if name in GIVEN]
                order += [None] * len([n for n in block.given if n in GIVEN]) + [block.where]
                sources.append(block.text)
            stem = page.replace("/", "_")
            log, results = root / "logs" / f"{stem}.python.log", root / "logs" / f"{stem}.results.json"
            rc = zygote.run(
                {"blocks": sources, "results": str(results), "cwd": str(root), "log": str(log)},
                timeout=COMMAND_TIMEOUT_S,
            )
            assert rc == 0 and results.exists(), f"{page}: the python session died ({rc}):\n{log_tail(log)}"
            outcome = json.loads(results.read_text())
            given_failures = [tb for where, tb in zip(order, outcome, strict=True) if where is None and tb]
            assert not given_failures, f"{page}: defining a given name failed:\n{given_failures[0]}"
            sessions[page] = {where: tb for where, tb in zip(order, outcome, strict=True) if where}
        return sessions[page]

    return session


@pytest.mark.unit
@pytest.mark.parametrize("block", [block_param(b) for b in BLOCKS if b.lang == "python"])
def test_python_block_runs(block, request):
    if block.skip:
        pytest.skip(f"{block.where}: {block.skip}")
    traceback = request.getfixturevalue("python_sessions")(block.page)[block.where]
    assert traceback is None, f"{block.where}:\n{block.text}\n{traceback}"


def key_paths(tree: dict, prefix: tuple = ()) -> list[tuple]:
    paths = []
    for key, value in tree.items():
        paths.append((*prefix, key))
        if isinstance(value, dict):
            paths += key_paths(value, (*prefix, key))
    return paths


def known_key_paths() -> set[tuple]:
    """Key paths of every shipped config (at the root and inside ``model``) and of the option dataclasses."""
    from nemo_aligner_plugin.config import SECTIONS, TrainDurations

    known = set()
    for path in (REPO / "configs").rglob("*.yaml"):
        tree = yaml.safe_load(path.read_text()) or {}
        known |= set(key_paths(tree)) | set(key_paths(tree.get("model") or {}))
    for section, cls in {**SECTIONS, "train_durations": TrainDurations}.items():
        known |= {(section,)} | {(section, f.name) for f in dataclasses.fields(cls)}
    return known


@pytest.mark.unit
@pytest.mark.parametrize("block", [block_param(b) for b in BLOCKS if b.lang == "yaml"])
def test_yaml_block_keys_exist(block):
    if block.skip:
        pytest.skip(f"{block.where}: {block.skip}")
    tree = yaml.safe_load(block.text)
    assert isinstance(tree, dict), f"{block.where}: not a YAML mapping"
    missing = [".".join(map(str, p)) for p in key_paths(tree) if p not in known_key_paths()]
    assert not missing, f"{block.where}: keys in no shipped config or option dataclass: {missing}"
