#!/usr/bin/env bash
# Build the tests' search engine: OpenSearch $OPENSEARCH_VERSION (tests/sim/versions.env), assembled
# from its Maven Central artifacts (server jar + the modules published as Maven artifacts) and a
# small launcher class (src/main/java), with the machine's JDK (17+) and Maven. Output:
#   ${XDG_CACHE_HOME:-~/.cache}/dataflywheel-blueprint/search-engine/opensearch-<version>/
#     search-engine.jar  lib/*.jar  .complete
# Maven's own repository is kept in .../dataflywheel-blueprint/maven so nothing lands in ~/.m2.
# A complete build is never redone for the same version (a warm run costs nothing).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/sim/versions.env
. "$here/../versions.env"
cache=${DFW_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/dataflywheel-blueprint}
out="$cache/search-engine/opensearch-$OPENSEARCH_VERSION"
log() { printf '[search-engine build] %s\n' "$*" >&2; }

if [ -f "$out/.complete" ]; then
  exit 0
fi
need=()
command -v java >/dev/null || need+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null || need+=(maven)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing ${need[*]} (Debian packages)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    log "needs a JDK 17+ and Maven: apt-get install ${need[*]}"
    exit 1
  fi
fi
jv=$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')
if [ "${jv%%.*}" -lt 17 ] 2>/dev/null; then
  log "OpenSearch $OPENSEARCH_VERSION needs Java 17 or newer; java here is $jv"
  exit 1
fi

log "building OpenSearch $OPENSEARCH_VERSION from Maven Central into $out (cold: about a minute)"
tmp="$out.tmp"
rm -rf "$tmp" && mkdir -p "$tmp"
mvn -B -q -f "$here/pom.xml" \
  -Dmaven.repo.local="$cache/maven" \
  -Dopensearch.version="$OPENSEARCH_VERSION" \
  -Dsearch.engine.build="$tmp/build" \
  package dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp/lib"
mv "$tmp/build/search-engine.jar" "$tmp/search-engine.jar"
rm -rf "$tmp/build"
touch "$tmp/.complete"
rm -rf "$out" && mv "$tmp" "$out"
log "done: $out"
