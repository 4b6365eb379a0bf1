# crid as a node image (see manifests/daemonset.yaml). Debian bookworm gives
# Python 3.11 and the same packages `make run` installs on a host.
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 python3-venv conmon containernetworking-plugins iptables catatonit runc \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY setup.cfg pyproject.toml README.md ./
COPY crid crid
COPY api api
COPY oci oci
COPY image image
COPY network network
RUN python3 -m venv /opt/crid \
 && /opt/crid/bin/pip install --no-cache-dir . \
 && /opt/crid/bin/python -m crid.oci.launcher \
 && ln -s /opt/crid/bin/crid /usr/local/bin/crid \
 && ln -s /opt/crid/bin/crid-runtime /usr/local/bin/crid-runtime \
 && rm -rf /src
COPY manifests/crid.toml /etc/crid/crid.toml
ENTRYPOINT ["/usr/local/bin/crid"]
