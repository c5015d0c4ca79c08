"""sr_jax: audio super-resolution and restoration in JAX/Flax."""
from setuptools import find_packages, setup

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
    packages=find_packages(include=["sr_jax", "sr_jax.*"]),
    install_requires=INSTALL_REQUIRES,
    extras_require={
        "test": ["pytest>=8"],
        "bench": ["torch>=2.4", "psutil>=5.9"],  # any installed build, CPU or CUDA
    },
)
