# syntax=docker/dockerfile:1
# mcp-cloudops container image: the wheel built in a throwaway stage, installed alone in a slim runtime.
#
# Build (VERSION must be pyproject.toml's [project] version: the install step names the wheel by it):
#   docker build --build-arg VERSION=0.1.0 -t ghcr.io/mcp-cloudops/mcp-cloudops:0.1.0 .
#
# stdio (the default command, `serve`): the client starts the container and talks on its stdin/stdout,
# so keep stdin open (-i) and pass credentials by name from the client's environment:
#   docker run -i --rm -e EXOSCALE_API_KEY -e EXOSCALE_API_SECRET ghcr.io/mcp-cloudops/mcp-cloudops:0.1.0
#   Incus over its unix socket: -v /var/lib/incus/unix.socket:/var/lib/incus/unix.socket and
#   --group-add "$(stat -c %g /var/lib/incus/unix.socket)" (the image runs as uid 10001, not root).
#
# Streamable HTTP: inside a container the server must bind beyond loopback, and it refuses to do that
# without a bearer token, so MCP_CLOUDOPS_HTTP_TOKEN is required (clients send Authorization: Bearer ...):
#   docker run --rm -p 127.0.0.1:8000:8000 -e MCP_CLOUDOPS_HTTP_TOKEN -e SCW_SECRET_KEY \
#     ghcr.io/mcp-cloudops/mcp-cloudops:0.1.0 serve --transport http --host 0.0.0.0

# requires-python = ">=3.11"; both stages use the same Python.
ARG PYTHON_VERSION=3.12

FROM python:${PYTHON_VERSION}-slim AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
# Only what the wheel is built from. mcp_cloudops/tools.yaml is a symlink to ../tools.yaml: COPY keeps it a
# symlink and tools.yaml lands beside it, so setuptools packs the real registry into the wheel.
COPY pyproject.toml README.md tools.yaml ./
COPY mcp_cloudops ./mcp_cloudops
RUN pip wheel --no-deps -w /dist . \
 && python -c "import glob, zipfile; \
wheel = zipfile.ZipFile(glob.glob('/dist/*.whl')[0]); \
assert wheel.getinfo('mcp_cloudops/tools.yaml').file_size > 0, 'the wheel has no tools.yaml'"

FROM python:${PYTHON_VERSION}-slim
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="mcp-cloudops" \
      org.opencontainers.image.description="One MCP server that lets AI agents operate Incus, Exoscale, Scaleway, Portainer and Nirvana Labs safely." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/mcp-cloudops/mcp-cloudops" \
      org.opencontainers.image.licenses="MIT" \
      io.modelcontextprotocol.server.name="io.github.mcp-cloudops/mcp-cloudops"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
COPY --from=builder /dist/ /tmp/dist/
# The wheel and its dependencies as published wheels only: nothing is compiled, no build tools are needed.
RUN pip install --only-binary=:all: "/tmp/dist/mcp_cloudops-${VERSION}-py3-none-any.whl" \
 && rm -rf /tmp/dist \
 && groupadd --system --gid 10001 mcp \
 && useradd --system --uid 10001 --gid mcp --create-home --home-dir /home/mcp --shell /usr/sbin/nologin mcp \
 && mcp-cloudops list-tools >/dev/null
WORKDIR /home/mcp
USER 10001:10001
EXPOSE 8000
ENTRYPOINT ["mcp-cloudops"]
CMD ["serve"]
