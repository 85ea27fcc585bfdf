"""geovr: 3D-aware training of video multimodal LLMs (GeoVR), with fused loss kernels.

`kernels/` (the Triton ops) ships inside the package as `geovr.kernels`: `geovr/kernels` is a
symbolic link to it, so the name `kernels` (a different PyPI package) is never claimed.

The native extension `geovr._ext` (csrc/: SE(3) pose loss, geometry) builds against the installed
torch, so install torch first and build without isolation:
    pip install torch==2.13.0 triton==3.9.0 && pip install --no-build-isolation -e ".[dev]"
A CPU-only extension is built with a CPU torch; the CUDA part is added when torch has CUDA and a GPU
is visible, or when FORCE_CUDA=1 (compile without a GPU, e.g. in a GPU image's build step).
"""
import os
import sys

from setuptools import find_packages, setup

CPU_SOURCES = ["csrc/bindings.cpp", "csrc/pose_loss.cpp", "csrc/pose_loss_cpu.cpp", "csrc/geometry_cpu.cpp"]
CUDA_SOURCES = ["csrc/pose_loss_cuda.cu"]
# The GPUs the CUDA part is built for (torch's TORCH_CUDA_ARCH_LIST syntax; the variable overrides):
# cubins for A100 (8.0), A10/3090 (8.6), L40S/4090 (8.9), H100 (9.0), and 9.0 PTX that the driver
# compiles for newer GPUs. One list for setup.py and CMakeLists.txt.
DEFAULT_CUDA_ARCHS = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "csrc", "CUDA_ARCHS")).read().strip()


def _extensions():
    try:
        import torch
        from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension
    except ImportError:
        sys.exit(
            "geovr: building the native extension needs torch installed first; run\n"
            "  pip install torch==2.13.0 triton==3.9.0 && pip install --no-build-isolation -e .\n"
            "(on a GPU machine keep its CUDA torch and only run the second command)"
        )
    cxx = ["-O3", "-std=c++17"]
    link = []
    if sys.platform.startswith("linux"):
        cxx.append("-fopenmp")  # at::parallel_for uses OpenMP when torch does
        link.append("-fopenmp")
    force = os.environ.get("FORCE_CUDA", "0") == "1"
    with_cuda = CUDA_HOME is not None and (force or torch.cuda.is_available()) and torch.version.cuda
    if with_cuda:
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", DEFAULT_CUDA_ARCHS)  # else only the visible GPU's
        print(f"geovr: building the CUDA part for {os.environ['TORCH_CUDA_ARCH_LIST']}", file=sys.stderr)
        ext = CUDAExtension(
            "geovr._ext", CPU_SOURCES + CUDA_SOURCES, define_macros=[("WITH_CUDA", None)],
            extra_compile_args={"cxx": cxx, "nvcc": ["-O3", "-std=c++17"]}, extra_link_args=link,
        )
    else:
        if force:
            print("geovr: FORCE_CUDA=1 but torch has no CUDA build or CUDA_HOME is unset: "
                  "building the CPU extension only", file=sys.stderr)
        ext = CppExtension("geovr._ext", CPU_SOURCES, extra_compile_args={"cxx": cxx},
                           extra_link_args=link)
    return [ext], {"build_ext": BuildExtension}


ext_modules, cmdclass = _extensions()

setup(
    name="geovr",
    version="0.1.0",
    description="GeoVR: teach video multimodal LLMs 3D awareness with distilled geometric objectives",
    python_requires=">=3.10",
    packages=find_packages(include=["geovr", "geovr.*"]),
    package_data={"geovr.eval": ["replication/*.yaml"]},
    ext_modules=ext_modules,
    cmdclass=cmdclass,
    # Ranges admit the CPU torch 2.13.0 of our machines and the GPU images' torch 2.11 (Python 3.12).
    install_requires=[
        "torch>=2.6,<2.15",
        "numpy>=1.24",
        "av>=12",  # PyAV: video decoding on the CPU and the synthetic world's encoder
        "tqdm>=4.60",
        "transformers>=4.57",  # Qwen3-VL: tokenizers, chat templates, the model classes
        "safetensors>=0.4",  # teacher caches, GeoVR checkpoints
        "pyyaml>=6",  # the trainer's config files
        "tensorboard>=2.14",  # the trainer's event files
    ],
    extras_require={
        # Triton ships with CUDA torch builds; on CPU machines install it explicitly to run the
        # kernels under TRITON_INTERPRET=1 and to compile them ahead of time.
        "triton": ["triton>=3.2"],
        # NVIDIA DALI decodes video on the GPU; its CPU backend (VP8/VP9) lets CI test that path.
        "dali": ["nvidia-dali-cuda130>=2.0"],
        # Megatron-core tensor/pipeline parallelism of the student's LLM (0.16.1 is the newest on
        # Python 3.11); psutil: its dist_checkpointing. Pin it in the same pip command as torch on CPU
        # machines, or it pulls a CUDA torch.
        "megatron": ["megatron-core>=0.16.1", "psutil>=5"],
        # LoRA adapters on the student's LLM (model.lora_rank; geovr/model/lora.py)
        "lora": ["peft>=0.21"],
        "dev": ["triton>=3.2", "pytest>=7", "hypothesis>=6", "scipy>=1.10", "pybind11>=2.10",
                "nvidia-dali-cuda130>=2.0", "pillow>=9", "megatron-core>=0.16.1", "psutil>=5",
                "matplotlib>=3.5", "peft>=0.21", "pytest-timeout>=2"],
        "gpu": ["triton>=3.2", "nvidia-dali-cuda130>=2.0"],
        # geovr.eval.probe's plots (and the trainer's loss curves); pyarrow reads the official
        # VSI-Bench parquet.
        "eval": ["matplotlib>=3.5", "pyarrow>=12"],
    },
)
