#!/bin/sh
# Build the test packages and two local apt repositories on a lab host (run as root inside it):
#   security  Origin Debian, Label Debian-Security, Suite bookworm-security (a security origin)
#   other     Origin opsplay-test (an ordinary repository)
# and install version 1.0 of each package. Version 1.1 waits in the repositories:
#   opsplay-demo-app     1.1 in security      -> upgraded
#   opsplay-demo-held    1.1 in security      -> on the hold list: never upgraded
#   opsplay-demo-other   1.1 in other         -> not a security update: left pending
#   opsplay-demo-reboot  1.1 in security      -> its postinst asks for a reboot
#   opsplay-demo-svc     1.1 in security      -> replaces the library its running service maps
# Only the local repositories' lists are fetched (no network); with --only-local the host's
# other apt sources are disabled so the role's own apt-get update sees these repositories only.
# Used by molecule/security_updates and tests/integration/test_security_updates.py.
set -eu
ROOT=/srv/opsplay-apt
ONLY_LOCAL=${1:-}

build() {  # build NAME VERSION REPO
  name=$1 version=$2 repo=$3
  dir=$(mktemp -d)
  mkdir -p "$dir/DEBIAN"
  cat > "$dir/DEBIAN/control" <<CONTROL
Package: $name
Version: $version
Architecture: all
Maintainer: opsplay tests <root@localhost>
Description: opsplay security_updates test package
CONTROL
  case $name in
    opsplay-demo-reboot)
      if [ "$version" != 1.0 ]; then
        printf '#!/bin/sh\ntouch /var/run/reboot-required\necho %s >> /var/run/reboot-required.pkgs\n' \
          "$name" > "$dir/DEBIAN/postinst"
        chmod 0755 "$dir/DEBIAN/postinst"
      fi ;;
    opsplay-demo-svc)
      mkdir -p "$dir/usr/lib/opsplay-demo" "$dir/lib/systemd/system"
      head -c 4096 /dev/zero | tr '\0' "${version#1.}" > "$dir/usr/lib/opsplay-demo/libdemo.so"
      cat > "$dir/lib/systemd/system/opsplay-demo.service" <<'UNIT'
[Unit]
Description=opsplay demo service mapping a library file
[Service]
ExecStart=/usr/bin/python3 -c "import mmap, time; f = open('/usr/lib/opsplay-demo/libdemo.so', 'rb'); m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ); time.sleep(10**9)"
[Install]
WantedBy=multi-user.target
UNIT
      printf '#!/bin/sh\nsystemctl daemon-reload\nsystemctl enable --now opsplay-demo.service\n' \
        > "$dir/DEBIAN/postinst"
      chmod 0755 "$dir/DEBIAN/postinst" ;;
  esac
  mkdir -p "$ROOT/$repo"
  dpkg-deb --root-owner-group --build "$dir" "$ROOT/$repo/${name}_${version}_all.deb" >/dev/null
  rm -rf "$dir"
}

index() {  # index REPO ORIGIN LABEL SUITE
  cd "$ROOT/$1"
  apt-ftparchive packages . > Packages
  apt-ftparchive -o "APT::FTPArchive::Release::Origin=$2" -o "APT::FTPArchive::Release::Label=$3" \
    -o "APT::FTPArchive::Release::Suite=$4" -o "APT::FTPArchive::Release::Codename=$4" \
    release . > Release
  cd - >/dev/null
}

rm -rf "$ROOT"
for name in opsplay-demo-app opsplay-demo-held opsplay-demo-other opsplay-demo-reboot opsplay-demo-svc; do
  build "$name" 1.0 base
done
for name in opsplay-demo-app opsplay-demo-held opsplay-demo-reboot opsplay-demo-svc; do
  build "$name" 1.1 security
done
build opsplay-demo-other 1.1 other
build opsplay-demo-broken 1.0 base
index security Debian Debian-Security bookworm-security
index other opsplay-test opsplay-test stable

cat > /etc/apt/sources.list.d/opsplay-test.list <<LIST
deb [trusted=yes] file:$ROOT/security ./
deb [trusted=yes] file:$ROOT/other ./
LIST
if [ "$ONLY_LOCAL" = --only-local ] && [ -f /etc/apt/sources.list ]; then
  mv /etc/apt/sources.list /etc/apt/sources.list.disabled
fi
apt-get update -qq -o Dir::Etc::sourcelist=sources.list.d/opsplay-test.list \
  -o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0
for name in opsplay-demo-app opsplay-demo-held opsplay-demo-other opsplay-demo-reboot opsplay-demo-svc; do
  dpkg -i "$ROOT/base/${name}_1.0_all.deb" >/dev/null
done
rm -f /var/run/reboot-required /var/run/reboot-required.pkgs
