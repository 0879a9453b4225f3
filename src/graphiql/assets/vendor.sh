#!/usr/bin/env bash
# Re-vendors the GraphiQL page's third-party assets from the npm registry: the exact published
# files of the pinned packages below, checked against the registry's sha512 integrity, with each
# package's license. To upgrade, change a version and its integrity (`npm view PKG@VER
# dist.integrity`), run this script, and update the file names in src/graphiql.rs.
set -euo pipefail
cd "$(dirname "$0")"

# package@version | integrity | file in the package -> file here
vendor() {
  local spec=$1 integrity=$2
  shift 2
  local work
  work=$(mktemp -d)
  (cd "$work" && npm pack --silent "$spec" >/dev/null)
  local tarball
  tarball=$(ls "$work"/*.tgz)
  local actual
  actual="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
  if [[ "$actual" != "$integrity" ]]; then
    echo "$spec: integrity $actual, expected $integrity" >&2
    exit 1
  fi
  tar xzf "$tarball" -C "$work"
  while (($#)); do
    cp "$work/package/$1" "$2"
    shift 2
  done
  rm -rf "$work"
}

vendor graphiql@3.8.3 \
  sha512-cuPDYtXVKV86Pu5PHBX642Odi/uVEE2y1Jxq5rGO/Qy1G2lRp7ZZ7a/T30RzxhuLSWo9zUbzq0P3U49//H0Ugw== \
  graphiql.min.js graphiql-3.8.3.min.js \
  graphiql.min.css graphiql-3.8.3.min.css \
  LICENSE LICENSE.graphiql
vendor react@18.3.1 \
  sha512-wS+hAgJShR0KhEvPJArfuPVN1+Hz1t0Y6n5jLrGQbkb4urgPE/0Rve+1kMB1v/oWgHgm4WIcV+i7F2pTVj+2iQ== \
  umd/react.production.min.js react-18.3.1.production.min.js \
  LICENSE LICENSE.react
vendor react-dom@18.3.1 \
  sha512-5m4nQKp+rZRb09LNH59GM4BxTh9251/ylbKIbpe7TpGxfJ+9kv6BLkLBXIjjspbgbnIBNqlI23tRnTWT0snUIw== \
  umd/react-dom.production.min.js react-dom-18.3.1.production.min.js \
  LICENSE LICENSE.react-dom
