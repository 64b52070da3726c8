"""Seeded mutations of a small valid manifest and of valid audio files, as hypothesis strategies (issue 26).

A case is a tuple of mutation operations, so hypothesis prints (and shrinks) a failing case as a readable list:
``("value", 3, "duration", "NaN")`` puts the raw JSON text ``NaN`` as line 4's duration; byte operations then
drop, insert or flip bytes of the serialized file. ``write_manifest_case`` / ``write_audio_case`` turn a case
into a file and say which lines must get an error (only where that is certain: no byte operations).
"""

from __future__ import annotations

import io
import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from hypothesis import strategies as st

from conftest import SAMPLE_RATE

BASE_LINES = 12  # lines of the valid manifest that is mutated
KEYS = ("audio_filepath", "duration", "text", "offset", "lang")  # "lang": an extra field NeMo ignores
REQUIRED = ("audio_filepath", "duration", "text")
DIR_VALUE = "<DIR>"  # stands for the JSON string of an existing directory
DEEP = 5000  # nesting depth of the deepest arrays (Python's JSON reader recurses)

# Raw JSON texts put in place of a field's value; each kind that once escaped the checks as an exception is a
# branch of its own, so that a few hundred cases meet each of them.
RAW_VALUES = st.one_of(
    st.sampled_from(["null", "[]", '[1, "a", null]', "{}", "true", "0", "-0.0", "-1", '""', '" "']),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999"]),
    st.just(str(10**400)),  # an int beyond any float: OverflowError in math.isfinite
    st.just("9" * 5000),  # beyond Python's int-string limit (4,300 digits): ValueError in json.loads
    st.just("[" * DEEP + "]" * DEEP),  # deeper than json.loads recurses: RecursionError
    st.sampled_from(['"/dev/zero"', '"\\ud800"', '"a\\u0000b.wav"', DIR_VALUE]),
    st.integers(-(10**6), 10**6).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(json.dumps),
    st.characters().map(lambda ch: json.dumps(ch * 5000)),  # a 5,000-character string
    st.integers(1, 2000).map(lambda n: json.dumps("../" * n + "x.wav")),  # from 8 to 6,005 characters
    st.text(st.characters(max_codepoint=0x1F) | st.characters(min_codepoint=0x7F, max_codepoint=0x9F), min_size=1).map(
        lambda s: json.dumps(s + ".wav")
    ),  # control characters
)
VALUE_OP = st.tuples(st.just("value"), st.integers(0, BASE_LINES - 1), st.sampled_from(KEYS), RAW_VALUES)
DROP_KEY_OP = st.tuples(st.just("drop_key"), st.integers(0, BASE_LINES - 1), st.sampled_from(KEYS))
LINE_OPS = st.integers(0, 3).flatmap(lambda i: DROP_KEY_OP if i == 0 else VALUE_OP)  # 3 in 4 replace a value
POSITION = st.integers(0, 1 << 16)  # taken modulo the file's length
BYTE_OPS = st.one_of(
    st.tuples(st.just("drop_bytes"), POSITION, st.integers(1, 64)),
    st.tuples(st.just("insert_bytes"), POSITION, st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("flip"), POSITION, st.integers(1, 255)),
    st.tuples(st.just("truncate"), POSITION),
    st.tuples(st.just("blank_line"), st.integers(0, BASE_LINES)),
    st.just(("bom",)),
)


@dataclass(frozen=True)
class ManifestCase:
    kind: str  # "mutated" (the base manifest, mutated), "random" bytes, "/dev/zero" or "directory"
    line_ops: tuple = ()  # JSON-level operations, applied first
    byte_ops: tuple = ()  # then these, on the serialized bytes
    data: bytes = b""  # the file, for kind "random"


VALUES_ONLY = st.builds(ManifestCase, st.just("mutated"), st.lists(LINE_OPS, min_size=1, max_size=3).map(tuple))
WITH_BYTES = st.builds(
    ManifestCase,
    st.just("mutated"),
    st.lists(LINE_OPS, max_size=2).map(tuple),
    st.lists(BYTE_OPS, min_size=1, max_size=3).map(tuple),
)
RANDOM = st.builds(ManifestCase, st.just("random"), data=st.binary(max_size=512))
SPECIAL = st.sampled_from([ManifestCase("/dev/zero"), ManifestCase("directory")])
# Of 10 cases: 5 with JSON-level mutations only (their errors are known: the test checks each line), 3 with byte
# mutations too, 1 random bytes, 1 /dev/zero or a directory. Shrinking heads for the first kind.
MANIFEST_CASES = st.integers(0, 9).flatmap(
    lambda i: VALUES_ONLY if i < 5 else WITH_BYTES if i < 8 else RANDOM if i == 8 else SPECIAL
)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True


def _certainly_wrong(key: str, raw: str) -> bool:
    """Whether a line whose ``key`` holds the raw JSON ``raw`` must be reported as an error."""
    if key == "audio_filepath":  # no raw value names a readable audio file
        return True
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return True  # the whole line is unreadable
    if key == "duration":
        return not (isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 1e6)
    if key == "offset":
        return not (isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 1e6)
    if key == "text":
        return not isinstance(value, str) or not _encodable(value)
    return False


def write_manifest_case(case: ManifestCase, base: list[dict], path: Path, directory: Path) -> tuple[Path, set[int]]:
    """The case's manifest (at ``path``, or ``/dev/zero`` / ``directory`` themselves), and the 1-based lines that
    must be reported as errors (unreadable JSON in an extra field included: the line cannot be read)."""
    if case.kind == "/dev/zero":
        return Path("/dev/zero"), set()
    if case.kind == "directory":
        return directory, set()
    if case.kind == "random":
        path.write_bytes(case.data)
        return path, set()
    placeholder = "\x00FUZZ\x00"
    lines = [dict(entry) for entry in base]
    raws: dict[int, dict[str, str]] = {}
    expected = set()
    for op in case.line_ops:
        line = op[1]
        if op[0] == "value":
            lines[line][op[2]] = placeholder + op[2]
            raws.setdefault(line, {})[op[2]] = json.dumps(str(directory)) if op[3] == DIR_VALUE else op[3]
        else:
            lines[line].pop(op[2], None)
            raws.get(line, {}).pop(op[2], None)
    for line, entry in enumerate(lines):
        if any(key not in entry for key in REQUIRED):
            expected.add(line + 1)
        expected.update(line + 1 for key, raw in raws.get(line, {}).items() if _certainly_wrong(key, raw))
    text = ""
    for line, entry in enumerate(lines):
        serialized = json.dumps(entry)
        for key, raw in raws.get(line, {}).items():
            serialized = serialized.replace(json.dumps(placeholder + key), raw)
        text += serialized + "\n"
    data = bytearray(text.encode("utf-8"))
    for op in case.byte_ops:
        data = _mutate_bytes(data, op)
    path.write_bytes(bytes(data))
    return path, (expected if not case.byte_ops else set())


def _mutate_bytes(data: bytearray, op: tuple) -> bytearray:
    at = op[1] % (len(data) + 1) if len(op) > 1 else 0
    if op[0] == "drop_bytes":
        return data[:at] + data[at + op[2] :]
    if op[0] == "insert_bytes":
        return data[:at] + op[2] + data[at:]
    if op[0] == "flip" and data:
        data[at % len(data)] ^= op[2]
    if op[0] == "truncate":
        return data[:at]
    if op[0] == "blank_line":
        lines = bytes(data).split(b"\n")
        return bytearray(b"\n".join(lines[: op[1]] + [b""] + lines[op[1] :]))
    if op[0] == "bom":
        return bytearray(b"\xef\xbb\xbf") + data
    return data


# ---------------------------------------------------------------------------------------------- audio
# Fields of the canonical 44-byte PCM WAV header: name -> (byte offset, struct format).
WAV_FIELDS = {
    "riff_size": (4, "<I"),
    "fmt_size": (16, "<I"),
    "format": (20, "<H"),
    "channels": (22, "<H"),
    "rate": (24, "<I"),
    "byte_rate": (28, "<I"),
    "block_align": (32, "<H"),
    "bits": (34, "<H"),
    "data_size": (40, "<I"),
}
FIELD_VALUES = st.one_of(
    st.sampled_from([0, 1, 2, 3, 7, 8, 12, 16, 24, 33, 64, 255, 8000, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF]),
    st.integers(0, 0xFFFFFFFF),
)
RATES = st.one_of(  # sample-rate fields: the slowest became hours of audio when resampled
    st.sampled_from([1, 8, 255, 999, 1000, 4000, 8000, 22050, 48000, 192000, 0x7FFFFFFF]),
    st.integers(1, 0xFFFFFFFF),
)
SAMPLE_VALUES = st.sampled_from([math.nan, math.inf, -math.inf, 1.2e27, -3e38, 2e6, 1e5, 32768.0, 1.5])
AUDIO_OPS = st.one_of(
    st.tuples(st.just("field"), st.sampled_from(sorted(WAV_FIELDS)), FIELD_VALUES),
    st.tuples(st.just("field"), st.just("rate"), RATES),
    st.tuples(st.just("truncate"), st.integers(0, 4096)),
    st.tuples(st.just("flip"), st.integers(0, 63), st.integers(1, 255)),  # in the header
    st.tuples(st.just("flip"), st.integers(0, 1 << 16), st.integers(1, 255)),  # anywhere
    st.tuples(st.just("sample"), st.integers(0, 1 << 16), SAMPLE_VALUES),  # float32 data: one garbled sample
    st.just(("no_data",)),  # data chunk of size 0, nothing after it
)


@dataclass(frozen=True)
class AudioCase:
    kind: str  # "pcm16", "pcm24", "float32" (hand-written WAV headers), "flac", or "random" bytes
    suffix: str  # ".wav" or ".flac", whatever the content
    ops: tuple = ()
    data: bytes = b""  # for kind "random"


AUDIO_CASES = st.one_of(
    st.builds(
        AudioCase,
        st.sampled_from(["pcm16", "pcm24", "float32", "float32", "flac"]),
        st.sampled_from([".wav", ".flac"]),
        st.lists(AUDIO_OPS, min_size=1, max_size=2).map(tuple),
    ),
    st.builds(AudioCase, st.just("random"), st.sampled_from([".wav", ".flac"]), data=st.binary(max_size=2048)),
)


def wav_bytes(samples: np.ndarray, kind: str, rate: int = SAMPLE_RATE) -> bytes:
    """A canonical 44-byte-header mono WAV of ``samples`` (floats in [-1, 1]) as PCM 16/24-bit or float 32."""
    if kind == "float32":
        data, code, bits = samples.astype("<f4").tobytes(), 3, 32
    elif kind == "pcm16":
        data, code, bits = (samples * 32767).astype("<i2").tobytes(), 1, 16
    else:
        pcm = (samples * (2**23 - 1)).astype("<i4")
        data, code, bits = b"".join(int(v).to_bytes(4, "little", signed=True)[:3] for v in pcm), 1, 24
    block = bits // 8
    header = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt "
    header += struct.pack("<IHHIIHH", 16, code, 1, rate, rate * block, block, bits)
    return header + b"data" + struct.pack("<I", len(data)) + data


def base_audio(kind: str, samples: np.ndarray) -> bytes:
    if kind == "flac":
        out = io.BytesIO()
        sf.write(out, samples, SAMPLE_RATE, format="FLAC")
        return out.getvalue()
    return wav_bytes(samples, kind)


def write_audio_case(case: AudioCase, samples: np.ndarray, path_stem: Path) -> Path:
    """The case's audio file at ``path_stem`` + the case's suffix."""
    path = path_stem.with_suffix(case.suffix)
    if case.kind == "random":
        path.write_bytes(case.data)
        return path
    data = bytearray(base_audio(case.kind, samples))
    for op in case.ops:
        if op[0] == "field" and case.kind != "flac" and len(data) >= 44:
            offset, fmt = WAV_FIELDS[op[1]]
            struct.pack_into(fmt, data, offset, op[2] & (0xFFFF if fmt == "<H" else 0xFFFFFFFF))
        elif op[0] == "truncate":
            data = data[: op[1]]
        elif op[0] == "flip" and data:
            data[op[1] % len(data)] ^= op[2]
        elif op[0] == "sample" and case.kind == "float32" and len(data) >= 48:
            struct.pack_into("<f", data, 44 + 4 * (op[1] % ((len(data) - 44) // 4)), op[2])
        elif op[0] == "no_data" and case.kind != "flac" and len(data) >= 44:
            data = data[:44]
            struct.pack_into("<I", data, 40, 0)
            struct.pack_into("<I", data, 4, 36)
    path.write_bytes(bytes(data))
    return path
