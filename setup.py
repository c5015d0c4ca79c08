"""sr_jax: audio super-resolution and restoration in JAX/Flax."""
import os

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))
# Every file of the shipped models (orbax folders, cards, examples), relative to pretrained/.
PRETRAINED_FILES = sorted(os.path.relpath(os.path.join(d, n), os.path.join(HERE, "pretrained"))
                          for d, _, names in os.walk(os.path.join(HERE, "pretrained")) for n in names)

INSTALL_REQUIRES = [
    "jax>=0.4.35",
    "flax>=0.10",
    "optax>=0.2.4",
    "orbax-checkpoint>=0.11",
    "ml-collections>=1.0",
    "absl-py>=2.1",
    "numpy>=1.26",
    "scipy>=1.11",
    "soundfile>=0.12",
    "soxr>=0.5",
    "tensorflow-datasets>=4.9.7",
    "grain>=0.2.4",
    "music21>=9",
    "matplotlib>=3.8",
    "tensorboardX>=2.6",
    "clu>=0.0.12",
    "tqdm>=4.66",
]

setup(
    name="sr_jax",
    version="0.1.0",
    description="Audio super-resolution, denoising and dereverberation with a 1D U-Net, GANs and "
    "collaborative sampling, in JAX/Flax.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    # The bundled configs and the shipped models travel inside the package (sr_jax/configs, sr_jax/pretrained), so
    # `--config=NAME` and `--model=NAME` work after a plain `pip install .`; a checkout reads them where they are.
    packages=find_packages(include=["sr_jax", "sr_jax.*"]) + ["sr_jax.configs", "sr_jax.pretrained"],
    package_dir={"sr_jax.configs": "configs", "sr_jax.pretrained": "pretrained"},
    package_data={"sr_jax.configs": ["*.py"], "sr_jax.pretrained": PRETRAINED_FILES},
    install_requires=INSTALL_REQUIRES,
    entry_points={"console_scripts": ["sr-jax = sr_jax.cli:main"]},
    extras_require={
        "speech": ["pesq>=0.0.4", "pystoi>=0.4"],  # PESQ-wb and STOI in evaluation reports
        "rooms": ["pyroomacoustics>=0.7"],  # the image-method `room image` degradation step
        "corpora": ["G722>=1.2"],  # decodes the G.722 voice prompts of sr_jax.data.packaged's speech corpus
        # the tests exercise the optional parts too
        "test": ["pytest>=8", "pesq>=0.0.4", "pystoi>=0.4", "pyroomacoustics>=0.7", "G722>=1.2"],
        "bench": ["torch>=2.4", "psutil>=5.9"],  # any installed build, CPU or CUDA
    },
)
