#!/usr/bin/env bash
# `make package`: the release build as a Debian package for the PostgreSQL it is built
# against (15 here: postgresql-15-pg-workflow_<version>-1_<arch>.deb) and as a tarball
# of the same files (extract with `tar -xzf ... -C /`), in target/package/.
#
# The files are those `cargo pgrx package` lays out: the library under pg_config
# --pkglibdir, the control file and SQL scripts under --sharedir/extension; plus the
# README, CHANGELOG and the pgextwlist custom script under /usr/share/doc.
set -euo pipefail
cd "$(dirname "$0")/.."
pg_config=$(scripts/pg_config.sh)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
pg_major=$("$pg_config" --version | sed -n 's/^PostgreSQL \([0-9]*\).*/\1/p')
arch=$(dpkg --print-architecture)
name="postgresql-$pg_major-pg-workflow"
out=${CARGO_TARGET_DIR:-target}/package
root="$out/root"
rm -rf "$out"; mkdir -p "$out"

echo "==> building pg_workflow $version (release) for PostgreSQL $pg_major"
cargo pgrx package --pg-config "$pg_config" --out-dir "$root" 2>&1 | grep -v "^\s*$" | tail -n 1
docs="$root/usr/share/doc/$name"
install -d "$docs/pgextwlist/pg_workflow"
install -m 644 README.md CHANGELOG.md "$docs/"
install -m 644 packaging/pgextwlist/pg_workflow/after-create.sql "$docs/pgextwlist/pg_workflow/"
library="$root$("$pg_config" --pkglibdir)/pg_workflow.so"
# The newest glibc symbol version the library needs is the oldest glibc it runs on.
glibc=$(objdump -T "$library" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -n 1 | sed 's/GLIBC_//')

echo "==> $out/pg_workflow-$version-pg$pg_major-linux-$arch.tar.gz"
tar -C "$root" --owner=0 --group=0 -czf "$out/pg_workflow-$version-pg$pg_major-linux-$arch.tar.gz" usr

echo "==> $out/${name}_$version-1_$arch.deb"
install -d "$root/DEBIAN"
cat >"$root/DEBIAN/control" <<EOF
Package: $name
Version: $version-1
Architecture: $arch
Maintainer: pg_workflow developers <pg_workflow@localhost>
Depends: postgresql-$pg_major, libc6 (>= $glibc), libgcc-s1
Section: database
Priority: optional
Installed-Size: $(du -sk "$root/usr" | cut -f1)
Description: durable workflows inside PostgreSQL $pg_major
 pg_workflow keeps every workflow's state in tables of the database: plain SQL
 starts workflows, lets workers in any language claim and finish activities and
 sends signals, each in the caller's transaction. CREATE EXTENSION pg_workflow
 (trusted: any role with CREATE on the database); add pg_workflow to
 shared_preload_libraries for the background worker, or call workflow_dispatch().
EOF
dpkg-deb --root-owner-group --build "$root" "$out/${name}_$version-1_$arch.deb" >/dev/null
rm -rf "$root/DEBIAN"
ls -l "$out"/*.deb "$out"/*.tar.gz | awk '{print $5, $9}'
