"""Code shared by the demo's recipes and the benchmarks (``make demo``): the synthetic corpus (sentences, speech,
corpus), the evaluation matrix, its report and timing, joined-utterance probes, long-form tuning, the alignment
plot, and the NeMo CTC/RNN-T baselines with their CPU RNN-T loss. Nothing is imported here: each module loads
only what it needs.
"""
