#!/usr/bin/env bash
# The package as an app gets it: packs vault-db, installs the tarball and its declared peers into
# a fresh app (once with npm's default layout, once with --install-strategy=linked, where nothing
# undeclared is reachable), then in each:
#   1. type-checks the app (test/consumer/*.ts) with tsc --strict and no skipLibCheck;
#   2. migrates through the bin, twice at once, and checks each migration is journaled once;
#   3. runs the README's snippet (compiled by tsc) against a database of its own;
#   4. bundles it with esbuild --keep-names (vault-db inlined; MikroORM and pg external), hides the installed
#      vault-db, and runs the bundle: nothing may be looked up beside the package's files;
#   5. runs an app that shares its ORM (withVaultDb) and its own MikroORM migrations;
#   6. runs `vault-db status` and `vault-db validate`, and checks `vault-db` with no URL fails
#      in one line naming DATABASE_URL;
#   7. checks the installed package folder is byte-identical to what was installed.
# Then measures a production install (--omit=dev) of the package and of the old dependency set.
#
# Usage: DATABASE_URL=postgres://root@127.0.0.1:5432/postgres scripts/consumer-test.sh
# (a role that may create databases; each layout gets a database of its own, dropped at the end).
# Installs come from npm's cache first (--prefer-offline): the repository's `npm ci` fills it.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
: "${DATABASE_URL:?set DATABASE_URL to a server URL whose role may create databases}"
SERVER_URL="$DATABASE_URL"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/vault-db-consumer.XXXXXX")"
DATABASES=()
cleanup() {
  for db in "${DATABASES[@]}"; do
    "$ROOT/node_modules/.bin/tsx" "$ROOT/scripts/consumer-db.ts" drop "$SERVER_URL" "$db" >/dev/null 2>&1 || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
say() { printf '\n--- %s ---\n' "$*"; }
fail() { echo "consumer-test: FAILED: $*" >&2; exit 1; }

PEERS=(@mikro-orm/core@6.6.16 @mikro-orm/postgresql@6.6.16 @mikro-orm/migrations@6.6.16 "pg@^8.23.1")
APP_DEV=(typescript@5.9.3 @types/node@20.19.43)
NPM_FLAGS=(--prefer-offline --no-audit --no-fund --loglevel=error)
ESBUILD="$ROOT/node_modules/.bin/esbuild"
[ -x "$ESBUILD" ] || fail "esbuild is missing from node_modules/.bin (it comes with vite and tsx): run npm ci"

say "pack"
(cd "$ROOT" && npm run build --silent)
TARBALL="$WORK/$(cd "$ROOT" && npm pack --pack-destination "$WORK" --silent | tail -n 1)"
[ -f "$TARBALL" ] || fail "npm pack wrote no tarball"
CONTENTS="$(tar -tzf "$TARBALL")"
grep -qx 'package/dist/cli.js' <<<"$CONTENTS" || fail "the tarball has no dist/cli.js"
grep -qx 'package/LICENSE' <<<"$CONTENTS" || fail "the tarball has no LICENSE"
if grep -E '\.map$|^package/src/|^package/docs/drafts/' <<<"$CONTENTS"; then fail "the tarball ships source maps, src/ or drafts"; fi
echo "$(wc -l <<<"$CONTENTS") files in $(basename "$TARBALL")"

folder_hash() { (cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) | sha256sum | cut -d' ' -f1; }

for layout in hoisted linked; do
  APP="$WORK/app-$layout"
  mkdir -p "$APP"
  cp "$ROOT"/test/consumer/*.ts "$ROOT/test/consumer/tsconfig.json" "$APP/"
  printf '{ "name": "consumer-%s", "private": true, "type": "module" }\n' "$layout" > "$APP/package.json"
  strategy=()
  [ "$layout" = linked ] && strategy=(--install-strategy=linked)

  say "$layout: install the tarball and the declared peers"
  (cd "$APP" && npm install "${NPM_FLAGS[@]}" "${strategy[@]}" "$TARBALL" "${PEERS[@]}" \
    && npm install "${NPM_FLAGS[@]}" "${strategy[@]}" -D "${APP_DEV[@]}")
  PKG="$(cd "$APP/node_modules/vault-db" && pwd -P)"
  BEFORE="$(folder_hash "$PKG")"
  BIN="$APP/node_modules/.bin/vault-db"

  say "$layout: tsc --strict, no skipLibCheck"
  (cd "$APP" && npx tsc -p tsconfig.json)

  DB="vault_db_consumer_${layout}_$$"
  DATABASES+=("$DB")
  DB_URL="$("$ROOT/node_modules/.bin/tsx" "$ROOT/scripts/consumer-db.ts" create "$SERVER_URL" "$DB")"

  say "$layout: vault-db with no URL fails in one line"
  set +e
  out="$(cd "$APP" && env -u DATABASE_URL -u DIRECT_URL "$BIN" migrate 2>&1)"; code=$?
  set -e
  [ "$code" = 2 ] || fail "vault-db migrate without a URL exited $code: $out"
  [ "$(printf '%s\n' "$out" | wc -l)" = 1 ] && grep -q DATABASE_URL <<<"$out" || fail "not one line naming DATABASE_URL: $out"

  say "$layout: two vault-db migrate at once"
  (cd "$APP" && DIRECT_URL="$DB_URL" "$BIN" migrate) & first=$!
  (cd "$APP" && DIRECT_URL="$DB_URL" "$BIN" migrate) & second=$!
  wait "$first" || fail "the first vault-db migrate failed"
  wait "$second" || fail "the second vault-db migrate failed"
  counts="$("$ROOT/node_modules/.bin/tsx" "$ROOT/scripts/consumer-db.ts" journal "$DB_URL")"
  [ "${counts% *}" = "${counts#* }" ] && [ "${counts% *}" -gt 0 ] || fail "journal rows/distinct names: $counts"
  echo "journaled: ${counts% *} migrations, each once"

  say "$layout: the README snippet"
  (cd "$APP" && DATABASE_URL="$DB_URL" node build/main.js) | tee "$WORK/out" && grep -q '^consumer: ok$' "$WORK/out"

  say "$layout: bundled with esbuild, the installed vault-db hidden"
  # --keep-names: MikroORM names entities by their class names (vault-db's relations and its
  # driver refer to 'Vault' and 'VaultRecord'), which a bundler renames on a clash unless told not to.
  (cd "$APP" && "$ESBUILD" build/main.js --bundle --platform=node --format=esm --keep-names --log-level=warning \
    --external:@mikro-orm/* --external:pg --external:pg-native --outfile=bundle/main.mjs)
  mv "$APP/node_modules/vault-db" "$WORK/hidden-vault-db"
  set +e
  (cd "$APP/bundle" && DATABASE_URL="$DB_URL" node main.mjs) > "$WORK/out" 2>&1; code=$?
  set -e
  mv "$WORK/hidden-vault-db" "$APP/node_modules/vault-db"
  cat "$WORK/out"
  [ "$code" = 0 ] && grep -q '^consumer: ok$' "$WORK/out" || fail "the bundle exited $code"

  say "$layout: the app's own ORM and migrations beside vault-db's"
  (cd "$APP" && DATABASE_URL="$DB_URL" node build/app-config.js) | tee "$WORK/out" && grep -q '^app-config: ok$' "$WORK/out"
  (cd "$APP" && DIRECT_URL="$DB_URL" "$BIN" migrate) | tee "$WORK/out"
  grep -q '0 migration(s) applied' "$WORK/out" || fail "vault-db migrate after the app's migrations applied something"

  say "$layout: vault-db status, vault-db validate"
  (cd "$APP" && DIRECT_URL="$DB_URL" "$BIN" status)
  (cd "$APP" && DATABASE_URL="$DB_URL" DIRECT_URL="$DB_URL" "$BIN" validate) || fail "vault-db validate found differences"

  say "$layout: the installed package is unchanged"
  AFTER="$(folder_hash "$PKG")"
  [ "$BEFORE" = "$AFTER" ] || { (cd "$PKG" && find . -newer package.json -type f); fail "files in $PKG changed"; }
  echo "unchanged: $AFTER"
done

say "production install size (npm install --omit=dev)"
mkdir -p "$WORK/prod-new" "$WORK/prod-old"
echo '{ "name": "prod-new", "private": true, "type": "module" }' > "$WORK/prod-new/package.json"
(cd "$WORK/prod-new" && npm install "${NPM_FLAGS[@]}" --omit=dev "$TARBALL" "${PEERS[@]}" >/dev/null)
# The dependencies vault-db declared before peers: what an app installed with it.
node -e '
  const old = { "@mikro-orm/cli": "6.6.16", "@mikro-orm/core": "6.6.16", "@mikro-orm/migrations": "6.6.16", "@mikro-orm/postgresql": "6.6.16",
    "@mikro-orm/reflection": "6.6.16", "embedded-postgres": "17.10.0-beta.17", "pg": "8.23.1", "pg-connection-string": "2.14.1", "zod": "3.25.76" };
  require("fs").writeFileSync(process.argv[1], JSON.stringify({ name: "prod-old", private: true, dependencies: old }));
' "$WORK/prod-old/package.json"
(cd "$WORK/prod-old" && npm install "${NPM_FLAGS[@]}" --omit=dev --ignore-scripts >/dev/null)
echo "before (the old dependencies): $(du -sh "$WORK/prod-old/node_modules" | cut -f1)"
echo "after (vault-db + its peers):  $(du -sh "$WORK/prod-new/node_modules" | cut -f1)"

echo
echo "consumer-test: passed"
