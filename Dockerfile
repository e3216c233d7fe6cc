# One image for irflow's processes; docker-compose.yml picks the command.
# target "runtime": worker and listener (no test tools). target "devstack": adds moto for the stand-in account.
FROM python:3.11-slim AS runtime
WORKDIR /app
COPY pyproject.toml README.md ./
COPY workflows workflows
COPY activities activities
COPY irflow irflow
COPY infra infra
COPY examples examples
COPY worker.py starter.py ./
RUN pip install --no-cache-dir . && mkdir /config && chown nobody /config
USER nobody
CMD ["python", "worker.py"]

FROM runtime AS devstack
USER root
RUN pip install --no-cache-dir ".[dev]"
USER nobody
