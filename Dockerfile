# crid as a node image (see manifests/daemonset.yaml). Debian bookworm gives
# Python 3.11 and the same packages `make run` installs on a host.
#
# The build needs no Python index. Its context is a directory holding
#   Dockerfile, requirements.txt (the runtime lock, with hashes),
#   crid.toml (manifests/crid.toml) and
#   wheels/ (crid's own wheel and every wheel requirements.txt locks).
# `make node-image` (e2e/deploy/node_image.py) assembles it under
# build/node-image/ from the checkout and build/wheels, and builds it with
# podman on a base made with mmdebstrap from Debian's mirror (no Docker Hub):
# BASE is any Debian bookworm root. apt needs the build's network to reach a
# Debian mirror (podman build --network=host where the default network is
# closed).
ARG BASE=debian:bookworm-slim
FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 python3-venv conmon containernetworking-plugins iptables catatonit runc \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
# Copied, not bind-mounted (RUN --mount): a COPY layer is cached by content, so
# a new crid wheel reruns the install; the wheels (~15 MB) stay in that layer.
COPY requirements.txt /tmp/crid/
COPY wheels /tmp/crid/wheels
RUN python3 -m venv /opt/crid \
 && /opt/crid/bin/pip install --no-cache-dir --no-index --find-links /tmp/crid/wheels \
      --require-hashes -r /tmp/crid/requirements.txt \
 && /opt/crid/bin/pip install --no-cache-dir --no-index --no-deps /tmp/crid/wheels/crid-*.whl \
 && /opt/crid/bin/python -m crid.oci.launcher \
 && ln -s /opt/crid/bin/crid /usr/local/bin/crid \
 && ln -s /opt/crid/bin/crid-runtime /usr/local/bin/crid-runtime \
 && rm -rf /tmp/crid
COPY crid.toml /etc/crid/crid.toml
ENTRYPOINT ["/usr/local/bin/crid"]
