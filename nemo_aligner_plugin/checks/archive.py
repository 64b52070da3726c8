"""Safe ``.nemo`` files: atomic writes, a named error for a broken archive, and the plugin version stamp.

A kill or a full disk while NeMo writes ``X.nemo`` in place leaves it truncated, and loading it then fails
with ``tarfile.ReadError: unexpected end of data`` and no file name.
"""

from __future__ import annotations

import errno
import glob
import gzip
import os
import tarfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Optional

from nemo.utils import logging

__all__ = ["atomic_output", "check_nemo_archive", "plugin_version_stamp"]

RECENT_BACKUP_S = 600  # a backup renamed this recently was made by the save now under way


def _backups(path: str) -> list[str]:
    """NeMo's checkpoint callback renames the previous ``X.nemo`` to ``X-vN.nemo`` before writing a new one."""
    stem = path[: -len(".nemo")] if path.endswith(".nemo") else path
    return sorted(glob.glob(glob.escape(stem) + "-v*.nemo"), key=lambda p: os.stat(p).st_ctime)


def _keep_previous_visible(path: str) -> None:
    """If NeMo's checkpoint callback just renamed ``path`` to its backup ``X-vN.nemo`` (rename updates ctime),
    hard-link the backup back to ``path``: readers keep a loadable model there until the new one replaces it."""
    recent = [b for b in _backups(path) if time.time() - os.stat(b).st_ctime < RECENT_BACKUP_S]
    if recent and not os.path.exists(path):
        try:
            os.link(recent[-1], path)
        except OSError:
            pass  # no hard links on this file system: the previous model stays at its backup name


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path next to ``path``; when the block succeeds, move it over ``path`` in one step.

    A crash, a kill or a full disk therefore never leaves a half-written file at ``path``: readers see the old
    model or the new one. Acts on global rank 0 only, where NeMo writes; temporary files of earlier, killed
    writers are removed there.
    """
    from nemo.utils.get_rank import is_global_rank_zero

    if "://" in os.fspath(path):  # object storage (NeMo's multistorageclient): uploads are whole objects
        yield os.fspath(path)
        return
    path = os.path.abspath(os.path.expanduser(os.fspath(path)))
    tmp = f"{path}.partial-{os.getpid()}"
    if not is_global_rank_zero():  # NeMo writes .nemo files on global rank 0 only
        yield tmp
        return
    for stale in glob.glob(glob.escape(path) + ".partial-*"):
        os.remove(stale)
    _keep_previous_visible(path)
    try:
        yield tmp
    except OSError as err:
        if os.path.exists(tmp):
            os.remove(tmp)
        if err.errno != errno.ENOSPC:
            raise
        folder = os.path.dirname(path)
        stat = os.statvfs(folder) if os.path.isdir(folder) else None
        free = f"{stat.f_bavail * stat.f_frsize / 2**20:.0f} MiB free" if stat else "free space unknown"
        previous = path if os.path.exists(path) else (_backups(path) or ["none"])[-1]
        raise OSError(
            errno.ENOSPC,
            f"No space left on device while writing {path} ({free} on {folder}; the model is staged in the "
            f"system temp dir first). Nothing was half-written; the previous model is {previous}. Free space, "
            "then resume (exp_manager.resume_if_exists=true).",
        ) from err
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    if os.path.exists(tmp):
        os.replace(tmp, path)


def check_nemo_archive(path: str | os.PathLike) -> None:
    """``ValueError`` naming what is wrong with a ``.nemo`` file (truncated, not a tar, config or weights
    missing, a tokenizer file the config refers to missing); directories and remote paths pass unchecked."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        return
    backups = _backups(path)
    hint = f" A previous copy: {backups[-1]}." if backups else ""
    hint += " The .ckpt files in the checkpoints folder restore the model too."
    try:
        with tarfile.open(path, "r:*") as tar:
            members = {m.name.lstrip("./"): m for m in tar.getmembers()}
            if not isinstance(tar.fileobj, gzip.GzipFile):  # plain tar (NeMo's format): data offsets are file offsets
                size = os.path.getsize(path)
                cut = [name for name, m in members.items() if m.isfile() and m.offset_data + m.size > size]
                if cut:
                    raise tarfile.ReadError(f"{cut[0]} is cut short")
            config_member = members.get("model_config.yaml")
            config_text = tar.extractfile(config_member).read().decode() if config_member else None
    except (tarfile.TarError, EOFError, OSError) as err:
        raise ValueError(
            f"{path} is not a complete .nemo archive ({err}): it was probably being written when the process was "
            f"killed or the disk filled up.{hint}"
        ) from err
    missing = [name for name in ("model_config.yaml", "model_weights.ckpt") if name not in members]
    if missing:
        raise ValueError(f"{path} is not a NeMo model archive: {', '.join(missing)} missing.{hint}")
    import yaml

    config = yaml.safe_load(config_text) or {}
    tokenizer = config.get("tokenizer") or {}
    for key in ("model_path", "vocab_path", "spe_tokenizer_vocab"):
        value = tokenizer.get(key)
        if isinstance(value, str) and value.startswith("nemo:") and value[5:] not in members:
            raise ValueError(
                f"{path}: the config's tokenizer.{key} refers to {value[5:]}, which is not in the archive: the "
                f".nemo was built or edited by hand without its tokenizer files.{hint} Re-save the model from "
                "Python (model.save_to) with the tokenizer directory present."
            )


def _compatible(saved: str, current: str) -> bool:
    """Same major version (for 0.x: same minor), as semantic versioning promises."""
    saved_parts, current_parts = saved.split("."), current.split(".")
    width = 2 if current_parts[0] == "0" else 1
    return saved_parts[:width] == current_parts[:width]


def plugin_version_stamp(saved: Optional[str]) -> str:
    """The version to record in a model config (this plugin's), warning if ``saved`` (the version that wrote
    the config being loaded) is incompatible with it."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        current = version("nemo_aligner_plugin")
    except PackageNotFoundError:
        current = "0+unknown"
    if saved and not _compatible(str(saved), current):
        logging.warning(
            f"This model was saved by nemo_aligner_plugin {saved}; this is {current}. Config keys, weights or "
            f"decoding may have changed between them (see CHANGELOG.md). If loading fails or results differ, use "
            f"pip install nemo_aligner_plugin=={saved}."
        )
    return current
