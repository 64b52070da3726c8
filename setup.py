"""nemo_aligner_plugin: Aligner-Encoder ASR (Stooke et al., NeurIPS 2024) as a NVIDIA NeMo plugin.

Install torch first with the exact pin (``pip install torch==2.13.0``) so pip does not pull a CUDA
build, then ``pip install -e .``.
"""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
version = {}
for line in (HERE / "nemo_aligner_plugin" / "__init__.py").read_text().splitlines():
    if line.startswith("__version__"):
        version["v"] = line.split("=")[1].strip().strip('"')

setup(
    name="nemo_aligner_plugin",
    version=version["v"],
    description="Aligner-Encoder speech recognition as a NVIDIA NeMo plugin",
    long_description=(HERE / "README.md").read_text() if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    packages=find_packages(include=["nemo_aligner_plugin", "nemo_aligner_plugin.*"]),
    package_data={"nemo_aligner_plugin.integration": ["catalog.yaml"]},
    python_requires=">=3.10",
    install_requires=[
        "torch>=2.6",
        "nemo_toolkit[asr]==3.0.*",
        "omegaconf>=2.3",
        "sentencepiece",
        "jiwer",
        "pyyaml",
    ],
    extras_require={
        "test": ["pytest>=8", "ruff", "hypothesis>=6.100", "onnx>=1.16", "onnxruntime>=1.17", "sherpa-onnx==2.0.1"],
        "plot": ["matplotlib"],
        # export (model.export(dir)) and the torch-free runtime (nemo_aligner_plugin.onnx); the runtime alone needs
        # numpy, onnxruntime, sentencepiece and soundfile (pip install --no-deps nemo_aligner_plugin, then those)
        "onnx": ["onnx>=1.16", "onnxruntime>=1.17", "soundfile"],
        # benchmarks/onnx_bench.py: system (d), a NeMo RNN-T decoded by sherpa-onnx
        "bench": ["onnx>=1.16", "onnxruntime>=1.17", "soundfile", "sherpa-onnx==2.0.1"],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
