#!/usr/bin/env bash
# Installs the Debian packages the test suite runs beside cairn, when they are missing. As root it
# installs them (apt-get update once, then apt-get install); otherwise it prints the command to run,
# and fails only in CI (CI=true), where a missing package must not turn into skipped tests.
# Silent when everything is present.
set -euo pipefail

# One entry per package: "NAME|CHECK", where CHECK is a shell command that succeeds when the
# package's files are usable (the package may be installed and still broken, or come from elsewhere).
packages=(
  # The ZooKeeper journal's tests and `cairn local up --journal zookeeper`; it brings a JRE.
  "zookeeper|test -r /usr/share/java/zookeeper.jar && command -v java"
  # The whole-cluster chaos test: network namespaces, veth pairs and routes (ip), a loop-device
  # target (losetup, lsblk, mount from util-linux and mount) with an ext4 file system (mkfs.ext4).
  "iproute2|command -v ip"
  "e2fsprogs|command -v mkfs.ext4"
  "util-linux|command -v losetup && command -v lsblk"
  "mount|command -v mount"
  # `cairn mount` and its tests: the addon npm install builds (scripts/build-fuse-addon.ts) speaks
  # libfuse 3 (libfuse3-dev: its headers; the library comes with fuse3, which also brings fusermount,
  # setuid, to mount and unmount, and /etc/fuse.conf); fuse-native's prebuilt addon, used when that
  # build cannot be made, links libfuse.so.2.
  "libfuse2|ldconfig -p | grep 'libfuse.so.2 '"
  "fuse3|command -v fusermount && ldconfig -p | grep 'libfuse3.so.3 '"
  "libfuse3-dev|test -r /usr/include/fuse3/fuse.h"
  # npm install builds fuse-native's addon with the caller of each operation (scripts/build-fuse-addon.ts).
  "gcc|command -v cc"
  "libc6-dev|test -r /usr/include/stdio.h"
  # pjdfstest (test/cluster/pjdfstest.test.ts) is built with autotools and run with perl's prove.
  "autoconf|command -v autoreconf"
  "automake|command -v automake"
  "make|command -v make"
  "perl|command -v prove"
  # The S3 gateway's tests: Debian's AWS CLI (/usr/bin/aws), and ceph's s3-tests on Debian's Python
  # (/usr/bin/python3) with the packages it imports.
  "awscli|test -x /usr/bin/aws"
  "python3-boto3|/usr/bin/python3 -c 'import boto3'"
  "python3-munch|/usr/bin/python3 -c 'import munch'"
  "python3-gevent|/usr/bin/python3 -c 'import gevent'"
  "python3-isodate|/usr/bin/python3 -c 'import isodate'"
  "python3-httplib2|/usr/bin/python3 -c 'import httplib2'"
  "python3-lxml|/usr/bin/python3 -c 'import lxml'"
  "python3-pytest|/usr/bin/python3 -c 'import pytest'"
  "python3-yaml|/usr/bin/python3 -c 'import yaml'"
  "python3-tz|/usr/bin/python3 -c 'import pytz'"
  "python3-requests|/usr/bin/python3 -c 'import requests'"
  # The dashboard's test drives Debian's Chromium (headless, through puppeteer-core); a font, so
  # that its pages and screenshots have text.
  "chromium|command -v chromium"
  "fonts-liberation|test -d /usr/share/fonts/truetype/liberation"
)

installed() {
  local name=$1 check=$2
  dpkg-query -W -f='${Status}' "$name" 2>/dev/null | grep -q 'install ok installed' || return 1
  eval "$check" >/dev/null 2>&1
}

missing=()
for entry in "${packages[@]}"; do
  name=${entry%%|*}
  check=${entry#*|}
  installed "$name" "$check" || missing+=("$name")
done
[ ${#missing[@]} -eq 0 ] && exit 0

command=(apt-get install -y --no-install-recommends "${missing[@]}")
if ! command -v apt-get >/dev/null; then
  echo "install-system-packages: missing ${missing[*]} (Debian package names), and this system has no apt-get: install their equivalents" >&2
  [ "${CI:-}" = true ] && exit 1
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-system-packages: missing ${missing[*]}; run: sudo ${command[*]}" >&2
  if [ "${CI:-}" = true ]; then exit 1; fi
  echo "install-system-packages: the tests that need them are skipped until then" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
"${command[@]}"
# A fresh install's libraries reach ldconfig's cache once it is rebuilt; the checks below read it.
ldconfig

still=()
for entry in "${packages[@]}"; do
  name=${entry%%|*}
  check=${entry#*|}
  installed "$name" "$check" || still+=("$name")
done
if [ ${#still[@]} -gt 0 ]; then
  echo "install-system-packages: ${still[*]} still missing or unusable after '${command[*]}'" >&2
  exit 1
fi
