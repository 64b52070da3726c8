"""recipes/tune_longform.py: the sweep on the tiny trained model, and its errors before any decoding."""

import json

import pytest

from conftest import load_recipe


@pytest.mark.unit
def test_sweep_scores_every_setting_and_one_chunk_equals_plain_decoding(trained_nemo, tone_manifest, tmp_path, capsys):
    from nemo_aligner_plugin import AlignerEncoderModel

    out = tmp_path / "rows.json"
    load_recipe("tune_longform").main(
        ["--model", str(trained_nemo), "--manifest", str(tone_manifest), "--strategies", "greedy_batch", "beam"]
        + ["--modes", "prime", "reset_only", "--chunk-seconds", "0.6", "30", "--pause-search-seconds", "0.4"]
        + ["--out", str(out)]
    )
    rows = json.loads(out.read_text())
    assert len(rows) == 8  # 2 strategies x 2 modes x 2 chunk lengths
    assert {(r["strategy"], r["mode"], r["chunk_seconds"]) for r in rows} == {
        (s, m, c) for s in ("greedy_batch", "beam") for m in ("prime", "reset_only") for c in (0.6, 30.0)
    }
    assert all(r["pause_search_seconds"] == min(0.4, r["chunk_seconds"]) for r in rows)
    assert all(r["chunk_features"] is False for r in rows)  # the defaults
    assert all(r["trim_pauses"] is False and r["onset_lead_seconds"] == 0.0 for r in rows)
    assert all(r["split_margin"] is None for r in rows)
    # Chunks longer than any file: every item is decoded whole, so the WER is plain decoding's (0 on the overfit model).
    model = AlignerEncoderModel.restore_from(str(trained_nemo)).eval()
    entries = [json.loads(line) for line in tone_manifest.read_text().splitlines()]
    plain = model.transcribe([e["audio_filepath"] for e in entries], batch_size=4, verbose=False)
    assert [h.text for h in plain] == [e["text"] for e in entries]
    assert all(r["wer"] == 0.0 for r in rows if r["chunk_seconds"] == 30.0)
    # Short chunks cut the tone utterances (about 1-2 s) apart: the settings are really applied.
    assert any(r["wer"] > 0.0 for r in rows if r["chunk_seconds"] == 0.6)
    printed = capsys.readouterr().out
    header = (
        "| strategy | mode | boundary | chunk_seconds | pause_search_seconds | chunk_features | trim_pauses"
        " | onset_lead_seconds | split_margin | split_min_seconds | WER | CER |"
    )
    assert header in printed


@pytest.mark.unit
@pytest.mark.parametrize(
    "args, message",
    [
        (["--modes", "rewind"], "longform mode='rewind'"),
        (["--strategies", "viterbi"], "decoding.strategy='viterbi' is unknown"),
        (["--split-margin", "-1"], "split_margin=-1.0"),
    ],
)
def test_bad_settings_are_named_before_decoding(trained_nemo, tone_manifest, args, message):
    with pytest.raises(SystemExit, match=message):
        load_recipe("tune_longform").main(["--model", str(trained_nemo), "--manifest", str(tone_manifest), *args])


@pytest.mark.unit
def test_manifest_without_text_is_refused_with_its_name(trained_nemo, tone_manifest, tmp_path):
    bare = tmp_path / "bare_manifest.json"
    lines = [json.loads(line) for line in tone_manifest.read_text().splitlines()]
    bare.write_text("".join(json.dumps({"audio_filepath": e["audio_filepath"]}) + "\n" for e in lines))
    with pytest.raises(SystemExit, match="bare_manifest.json"):
        load_recipe("tune_longform").main(["--model", str(trained_nemo), "--manifest", str(bare)])
