#!/usr/bin/env python3
"""Long-form inference: peak memory (chunked vs plain) and WER (chunked modes vs blind segmentation).

B: utterances, S: samples.

    # peak RSS of transcribe_longform vs model.transcribe on 1 and 10 min of espeak-ng speech (random weights:
    # memory does not depend on them); each run is its own subprocess, plain runs under an address-space cap
    OMP_NUM_THREADS=1 python benchmarks/longform_memory.py memory --minutes 1 10

    # where the long-form peak comes from, stage by stage
    OMP_NUM_THREADS=1 python benchmarks/longform_memory.py stages --minutes 10

    # WER on ~10 demo test utterances joined per file (20-30 s), with a trained demo model
    OMP_NUM_THREADS=1 python benchmarks/longform_memory.py wer --model /tmp/demo_model/AlignerEncoder-Demo.nemo \
        --manifest data/demo/corpus/test_manifest.json --chunk-seconds 4.5

Plain full-context attention holds (heads x T x T) scores per layer, so its memory grows with the square
of the audio length; chunking keeps the features plus one group of chunks' activations.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
SAMPLE_RATE = 16000
SENTENCES = [  # read by espeak-ng, tiled to the requested length
    "the meeting was moved to thursday the fourteenth",
    "it's five degrees and clear in berlin",
    "the bus leaves from platform eleven at quarter past ten",
    "remind me to call the dentist tomorrow morning",
    "how long will it take to drive to the airport",
    "play some quiet music in the living room",
    "set a timer for twenty five minutes",
    "what is the weather like in new york this weekend",
]


# ---------------------------------------------------------------------------------------------- audio
def espeak_audio(seconds: float, out: Path) -> Path:
    """espeak-ng reading SENTENCES, resampled to 16 kHz and tiled to ``seconds``."""
    import librosa

    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(wav), ". ".join(SENTENCES)], check=True)
        speech, rate = sf.read(wav, dtype="float32")
    speech = librosa.resample(speech, orig_sr=rate, target_sr=SAMPLE_RATE)
    audio = np.tile(speech, int(np.ceil(seconds * SAMPLE_RATE / speech.size)))[: int(seconds * SAMPLE_RATE)]
    sf.write(out, audio, SAMPLE_RATE)
    return out


def demo_model(config: str, tokenizer: str):
    """The demo-sized architecture with random weights (seed 0)."""
    import torch
    from omegaconf import OmegaConf

    from nemo_aligner_plugin import AlignerEncoderModel

    cfg = OmegaConf.load(config)
    cfg.model.tokenizer.dir = tokenizer
    cfg.model.train_ds.manifest_filepath = None
    OmegaConf.resolve(cfg)
    torch.manual_seed(0)
    return AlignerEncoderModel(cfg.model).eval()


def rss_mib() -> float:
    """Current resident set size (VmRSS) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# ---------------------------------------------------------------------------------------------- memory
def measure(args: argparse.Namespace) -> None:
    """Child process: load the model, transcribe one file, print JSON with RSS before and at peak."""
    import torch

    from nemo_aligner_plugin.longform import LongformConfig, transcribe_longform

    if args.cap_gib:
        cap = int(args.cap_gib * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    torch.set_num_threads(1)
    model = demo_model(args.config, args.tokenizer)
    before = rss_mib()
    start = time.perf_counter()
    result = {"method": args.method, "audio": args.audio, "rss_before_mib": round(before)}
    try:
        with torch.no_grad():
            if args.method == "plain":
                model.transcribe([args.audio], batch_size=1, verbose=False)
            else:
                cfg = LongformConfig(chunk_seconds=args.chunk_seconds, chunk_batch_size=args.chunk_batch_size)
                transcribe_longform(model, [args.audio], cfg)
        result["status"] = "ok"
    except (RuntimeError, MemoryError) as err:  # torch raises RuntimeError when the allocator hits the cap
        result["status"] = f"failed: {type(err).__name__}: {str(err).splitlines()[0][:120]}"
    result["seconds"] = round(time.perf_counter() - start, 1)
    result["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(result))


def memory(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="longform_mem_"))
    rows = []
    try:
        for minutes in args.minutes:
            audio = espeak_audio(60 * minutes, workdir / f"speech_{minutes:g}min.wav")
            for method in args.methods:
                cmd = [
                    sys.executable, __file__, "_measure", "--method", method, "--audio", str(audio),
                    "--config", args.config, "--tokenizer", args.tokenizer,
                    "--chunk-seconds", str(args.chunk_seconds), "--chunk-batch-size", str(args.chunk_batch_size),
                    "--cap-gib", str(args.plain_cap_gib if method == "plain" else 0),
                ]  # fmt: skip
                out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
                lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
                row = json.loads(lines[-1]) if lines else {"method": method, "status": f"crashed rc={out.returncode}"}
                row["minutes"] = minutes
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\n{'audio':>7} {'method':>9} {'peak RSS MiB':>13} {'before MiB':>11} {'seconds':>8}  status")
    for r in rows:
        print(
            f"{r['minutes']:>5g} m {r['method']:>9} {r.get('peak_rss_mib', '-'):>13} "
            f"{r.get('rss_before_mib', '-'):>11} {r.get('seconds', '-'):>8}  {r['status']}"
        )


def stages(args: argparse.Namespace) -> None:
    """Where the long-form peak comes from: peak RSS (VmHWM, reset before each stage) above the RSS before it."""
    import torch

    from nemo_aligner_plugin.longform import (
        LongformConfig,
        decode_chunked_batch,
        encode_chunked,
        load_audio,
        pre_encode,
    )

    def peak_above(before: float) -> str:
        status = Path("/proc/self/status").read_text().splitlines()
        return f"+{int(next(x for x in status if x.startswith('VmHWM')).split()[1]) / 1024 - before:.0f} MiB"

    def reset_peak() -> float:
        Path("/proc/self/clear_refs").write_text("5")  # Linux: resets VmHWM to the current RSS
        return rss_mib()

    torch.set_num_threads(1)
    model = demo_model(args.config, args.tokenizer)
    cfg = LongformConfig(chunk_seconds=args.chunk_seconds, chunk_batch_size=args.chunk_batch_size)
    window = round(cfg.pre_encode_seconds / float(model.cfg.preprocessor.window_stride))
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        path = espeak_audio(60 * args.minutes, Path(tmp) / "speech.wav")
        before = reset_peak()
        audio = load_audio(str(path), SAMPLE_RATE)[None]
        print(f"load audio ({args.minutes:g} min)          {peak_above(before)}")
        before = reset_peak()
        feats, feat_lens = model.preprocessor(input_signal=audio, length=torch.tensor([audio.size(1)]))
        print(f"features (STFT, mel, normalize)   {peak_above(before)}   features {feats.numel() * 4 / 2**20:.0f} MiB")
        for name, frames in (("whole", None), (f"windows of {cfg.pre_encode_seconds:g} s", window)):
            before = reset_peak()
            pre_encode(model.encoder, feats, feat_lens, frames)
            print(f"conv subsampling, {name:<15} {peak_above(before)}")
        before = reset_peak()
        encoding = encode_chunked(model, cfg, processed_signal=feats, processed_signal_length=feat_lens)
        print(f"Conformer on chunks (groups of {cfg.chunk_batch_size}) {peak_above(before)}")
        before = reset_peak()
        decode_chunked_batch(model, encoding, cfg)
        print(f"decoding                          {peak_above(before)}")


# ---------------------------------------------------------------------------------------------- WER
def build_long_files(
    manifest: Path, per_file: int, gap_seconds: float, out_dir: Path, pad_to_seconds: Optional[float] = None
) -> list[dict]:
    """Join ``per_file`` consecutive utterances (with ``gap_seconds`` of silence) into one file each.

    ``pad_to_seconds``: instead, extend every utterance to exactly that length with noise at its own noise
    floor, so that chunks of that length hold one whole utterance each (a check of the chunking machinery:
    fixed cuts through sentences are then not what is measured).
    """
    items = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    gap = np.zeros(int(gap_seconds * SAMPLE_RATE), dtype=np.float32)
    rng = np.random.default_rng(0)
    long_items = []
    for n, start in enumerate(range(0, len(items) - per_file + 1, per_file)):
        group = items[start : start + per_file]
        pieces = []
        for item in group:
            audio, rate = sf.read(item["audio_filepath"], dtype="float32")
            assert rate == SAMPLE_RATE, f"{item['audio_filepath']}: {rate} Hz"
            if pad_to_seconds is None:
                pieces += [audio, gap]
                continue
            missing = int(pad_to_seconds * SAMPLE_RATE) - audio.size
            assert missing >= 0, f"{item['audio_filepath']} is longer than {pad_to_seconds} s"
            floor = float(np.std(audio[: SAMPLE_RATE // 50]))  # the first 20 ms: the corpus' added noise
            pieces += [audio, (floor * rng.standard_normal(missing)).astype(np.float32)]
        audio = np.concatenate(pieces[:-1] if pad_to_seconds is None else pieces)
        path = out_dir / f"long_{n:03d}.wav"
        sf.write(path, audio, SAMPLE_RATE)
        long_items.append({"audio_filepath": str(path), "duration": audio.size / SAMPLE_RATE,
                           "text": " ".join(i["text"] for i in group)})  # fmt: skip
    return long_items


def blind_segmentation(model, files: list[str], chunk_seconds: float) -> list[str]:
    """Cut each file into fixed ``chunk_seconds`` pieces, transcribe each piece on its own, join the texts."""
    size = int(chunk_seconds * SAMPLE_RATE)
    pieces, owners = [], []
    for n, path in enumerate(files):
        audio, _ = sf.read(path, dtype="float32")
        for start in range(0, audio.size, size):
            pieces.append(audio[start : start + size])
            owners.append(n)
    hyps = model.transcribe(pieces, batch_size=16, verbose=False)
    texts = [[] for _ in files]
    for owner, hyp in zip(owners, hyps, strict=True):
        if hyp.text:
            texts[owner].append(hyp.text)
    return [" ".join(t) for t in texts]


def wer(args: argparse.Namespace) -> None:
    import torch
    from nemo.collections.asr.metrics.wer import word_error_rate_detail

    from nemo_aligner_plugin import AlignerEncoderModel
    from nemo_aligner_plugin.longform import LongformConfig, transcribe_longform

    torch.set_num_threads(args.threads)
    if args.model.endswith(".nemo"):
        model = AlignerEncoderModel.restore_from(args.model).eval()
    else:  # a Lightning checkpoint of a run (its config must point at a tokenizer that exists here)
        model = AlignerEncoderModel.load_from_checkpoint(args.model, map_location="cpu").eval()
    out_dir = Path(args.out_dir or tempfile.mkdtemp(prefix="longform_wer_"))
    out_dir.mkdir(parents=True, exist_ok=True)
    long_items = build_long_files(Path(args.manifest), args.per_file, args.gap_seconds, out_dir, args.pad_to_chunk)
    files, refs = [i["audio_filepath"] for i in long_items], [i["text"] for i in long_items]
    durations = [i["duration"] for i in long_items]
    print(f"{len(files)} long files of {min(durations):.1f}-{max(durations):.1f} s")

    short = [json.loads(line) for line in Path(args.manifest).read_text().splitlines() if line.strip()]
    short = short[: len(files) * args.per_file]
    systems = {  # name -> (run, references)
        "short utterances, plain (reference)": (
            lambda: [h.text for h in model.transcribe([i["audio_filepath"] for i in short], 16, verbose=False)],
            [i["text"] for i in short],
        ),
        "short utterances, long-form, one chunk each (must equal the line above)": (
            lambda: [
                h.text
                for h in transcribe_longform(
                    model, [i["audio_filepath"] for i in short], LongformConfig(chunk_seconds=60.0), batch_size=16
                )
            ],
            [i["text"] for i in short],
        ),
        "long files, plain (no segmentation)": (
            lambda: [h.text for h in model.transcribe(files, batch_size=4, verbose=False)],
            refs,
        ),
    }
    for seconds in args.chunk_seconds:
        systems[f"blind segmentation {seconds:g} s"] = (lambda s=seconds: blind_segmentation(model, files, s), refs)
        for boundary in args.boundaries:
            for mode in ("reset_only", "prime", "carry_state"):
                cfg = LongformConfig(
                    chunk_seconds=seconds,
                    mode=mode,
                    prime_tokens=args.prime_tokens,
                    boundary=boundary,
                    pause_search_seconds=args.pause_search_seconds,
                )
                name = (
                    f"chunked {seconds:g} s {mode}"
                    + {"fixed": "", "pause": " at pauses", "every_pause": " at every pause"}[boundary]
                )
                systems[name] = (
                    lambda cfg=cfg: [h.text for h in transcribe_longform(model, files, cfg, batch_size=4)],
                    refs,
                )
    rows = []
    for name, (run, references) in systems.items():
        start = time.perf_counter()
        hyps = run()
        wer_, _, ins, dels, subs = word_error_rate_detail(hyps, references)
        rows.append((name, 100 * wer_, 100 * ins, 100 * dels, 100 * subs))
        print(f"{name:<44} WER {100 * wer_:6.2f}%  ({time.perf_counter() - start:.0f} s)  {hyps[0][:80]!r}", flush=True)
    print("\n| system | WER % | ins % | del % | sub % |\n|---|---|---|---|---|")
    print("\n".join(f"| {n} | {w:.2f} | {i:.2f} | {d:.2f} | {s:.2f} |" for n, w, i, d, s in rows))
    if not args.out_dir:
        shutil.rmtree(out_dir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------- CLI
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=str(REPO / "configs/aligner_demo.yaml"))
    common.add_argument("--tokenizer", default=str(REPO / "data/demo/corpus/tokenizer"))
    common.add_argument("--chunk-seconds", type=float, default=15.0)
    common.add_argument("--chunk-batch-size", type=int, default=8)

    mem = sub.add_parser("memory", parents=[common], help="peak RSS, chunked vs plain")
    mem.add_argument("--minutes", type=float, nargs="+", default=[1.0, 10.0])
    mem.add_argument("--methods", nargs="+", default=["longform", "plain"], choices=["longform", "plain"])
    mem.add_argument("--plain-cap-gib", type=float, default=12.0, help="address-space cap for plain runs")
    mem.set_defaults(fn=memory)

    stg = sub.add_parser("stages", parents=[common], help="peak RSS of each long-form stage")
    stg.add_argument("--minutes", type=float, default=10.0)
    stg.set_defaults(fn=stages)

    child = sub.add_parser("_measure", parents=[common])
    child.add_argument("--method", required=True)
    child.add_argument("--audio", required=True)
    child.add_argument("--cap-gib", type=float, default=0.0)
    child.set_defaults(fn=measure)

    ev = sub.add_parser("wer", help="WER of chunked modes vs blind segmentation (needs a trained .nemo)")
    ev.add_argument("--model", required=True, help=".nemo file or Lightning .ckpt")
    ev.add_argument("--manifest", default=str(REPO / "data/demo/corpus/test_manifest.json"))
    ev.add_argument("--per-file", type=int, default=10, help="utterances joined per long file")
    ev.add_argument("--gap-seconds", type=float, default=0.0, help="digital silence between utterances")
    ev.add_argument("--chunk-seconds", type=float, nargs="+", default=[4.5], help="one or more chunk lengths")
    ev.add_argument("--prime-tokens", type=int, default=10)
    ev.add_argument(
        "--boundaries",
        nargs="+",
        default=["fixed", "pause"],
        choices=["fixed", "pause", "every_pause"],
        help="chunk boundaries",
    )
    ev.add_argument(
        "--pause-search-seconds",
        type=float,
        default=2.5,
        help="boundary=pause (every_pause past a chunk): search window",
    )
    ev.add_argument(
        "--pad-to-chunk",
        type=float,
        default=None,
        help="pad every utterance to this many seconds (see build_long_files)",
    )
    ev.add_argument("--threads", type=int, default=1)
    ev.add_argument("--out-dir", default=None, help="keep the long files here")
    ev.set_defaults(fn=wer)

    args = parser.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
