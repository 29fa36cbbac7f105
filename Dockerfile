FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY monitor ./monitor
COPY strategies ./strategies
COPY migrations ./migrations
COPY config ./config
RUN pip install --no-cache-dir . && useradd --create-home pricemon
USER pricemon
ENTRYPOINT ["pricemon"]
CMD ["--help"]
