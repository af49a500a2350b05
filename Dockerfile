# Ballast server image: the `ballast` binary and the built dashboard.
#   docker build -t ballast . && docker run -p 3000:3000 -v ballast-data:/var/lib/ballast ballast

FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends nodejs npm \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Same pipeline as scripts/run, with an optimised server.
RUN scripts/setup \
 && scripts/build-site \
 && cargo build --release --locked -p ballast-server --bin ballast

FROM debian:bookworm-slim
RUN useradd --system --home-dir /var/lib/ballast --shell /usr/sbin/nologin ballast \
 && mkdir -p /var/lib/ballast \
 && chown ballast:ballast /var/lib/ballast \
 && chmod 0700 /var/lib/ballast
COPY --from=build /src/target/release/ballast /usr/local/bin/ballast
COPY --from=build /src/target/site /usr/share/ballast/site
USER ballast
ENV BALLAST_LISTEN=0.0.0.0:3000 \
    BALLAST_DATA_DIR=/var/lib/ballast \
    BALLAST_SITE_ROOT=/usr/share/ballast/site
VOLUME ["/var/lib/ballast"]
EXPOSE 3000
ENTRYPOINT ["/usr/local/bin/ballast"]
CMD ["serve"]
