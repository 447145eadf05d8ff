# The image of the KubeRay example in docs/cluster.md: nstvid with torch, Ray and HEIC decoding.
#
#   docker build -t registry.example.com/nstvid:latest .    # from a clone, this folder
#
# Not built here: base images cannot be pulled where nstvid is developed. tests/test_day_one.py
# checks what can be checked without building: the Python and torch versions are the Makefile's
# (PYTHON_VERSION, TORCH), and every file COPY names exists.
ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim

# opencv-python loads libGL and GLib; KubeRay's readiness probes run wget.
RUN apt-get update && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 wget \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/nstvid
# As the Makefile pins them; PyPI's Linux wheels of torch carry their CUDA libraries.
RUN pip install --no-cache-dir torch==2.14.1 torchvision==0.29.1
COPY pyproject.toml README.md LICENSE __init__.py __main__.py cli.py ./
COPY configs/ configs/
COPY pipeline/ pipeline/
# ray[default]: the head's dashboard, through which a RayJob is submitted.
RUN pip install --no-cache-dir '.[ray,heif]' 'ray[default]'
