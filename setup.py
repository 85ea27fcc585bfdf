"""geovr: 3D-aware training of video multimodal LLMs (GeoVR), with fused loss kernels.

`kernels/` (the Triton ops) ships inside the package as `geovr.kernels`: `geovr/kernels` is a
symbolic link to it, so the name `kernels` (a different PyPI package) is never claimed.
"""
from setuptools import find_packages, setup

setup(
    name="geovr",
    version="0.1.0",
    description="GeoVR: teach video multimodal LLMs 3D awareness with distilled geometric objectives",
    python_requires=">=3.10",
    packages=find_packages(include=["geovr", "geovr.*"]),
    # Ranges admit the CPU torch 2.13.0 of our machines and the GPU images' torch 2.11 (Python 3.12).
    install_requires=[
        "torch>=2.6,<2.15",
        "numpy>=1.24",
    ],
    extras_require={
        # Triton ships with CUDA torch builds; on CPU machines install it explicitly to run the
        # kernels under TRITON_INTERPRET=1 and to compile them ahead of time.
        "triton": ["triton>=3.2"],
        "dev": ["triton>=3.2", "pytest>=7", "hypothesis>=6", "scipy>=1.10"],
        "gpu": ["triton>=3.2"],
    },
)
